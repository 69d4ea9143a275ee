#!/usr/bin/env python3
"""Reference external trainer for Aether's gpu-runner (docs/trainer-protocol.md).

A small PyTorch MLP on a dataset snapshot (Arrow IPC). It uses the GPUs the runner gives it
(CUDA_VISIBLE_DEVICES), writes a checkpoint every epoch (weights, optimizer, epoch, RNG
states) and resumes from AETHER_RESUME_CHECKPOINT, reports per-epoch metrics as JSON lines
on stdout, and exports an ONNX model whose graph holds the preprocessing (impute, standardize)
with input `features` (float32, N x d, NaN = missing) and output `probability` (N x 1).

Needs: torch, pyarrow (and onnx for torch.onnx.export on recent torch versions).
Exit codes: 0 done, 75 retryable (CUDA out of memory), anything else: failed for good.
"""
import json
import os
import random
import sys

import pyarrow.ipc as ipc
import torch

EXIT_RETRYABLE = 75
NOT_FEATURES = {"entity_key", "ts", "label"}


def emit(event):
    print(json.dumps(event), flush=True)


def load(path):
    table = ipc.open_file(path).read_all()
    names = [
        f.name
        for f in table.schema
        if f.name not in NOT_FEATURES
        and (str(f.type).startswith(("double", "float", "int", "bool")))
    ]
    cols = [table.column(n).to_pylist() for n in names]
    labels = table.column("label").to_pylist()
    ts = [t.timestamp() if hasattr(t, "timestamp") else float(t) for t in table.column("ts").to_pylist()]
    rows = [i for i, y in enumerate(labels) if y is not None]
    x = torch.tensor(
        [[float("nan") if cols[j][i] is None else float(cols[j][i]) for j in range(len(names))] for i in rows],
        dtype=torch.float32,
    )
    y = torch.tensor([1.0 if labels[i] > 0.5 else 0.0 for i in rows], dtype=torch.float32)
    order = sorted(range(len(rows)), key=lambda k: (ts[rows[k]], k))
    return names, x, y, order


def auc(y, p):
    pairs = sorted(zip(p, y))
    pos = sum(y)
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return 0.5
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j + 1 < len(pairs) and pairs[j + 1][0] == pairs[i][0]:
            j += 1
        rank = (i + j) / 2 + 1
        rank_sum += rank * sum(1 for k in range(i, j + 1) if pairs[k][1] == 1)
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


class Served(torch.nn.Module):
    """The trained network behind the preprocessing it was trained with."""

    def __init__(self, net, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, features):
        x = torch.where(torch.isnan(features), self.mean, features)
        return torch.sigmoid(self.net((x - self.mean) / self.std))


def main():
    hp = json.loads(os.environ.get("AETHER_HYPERPARAMETERS", "{}"))
    epochs = int(hp.get("epochs", 10))
    lr = float(hp.get("learningRate", 1e-3))
    hidden = int(hp.get("hidden", 32))
    batch = int(hp.get("batchSize", 256))
    seed = int(hp.get("seed", 42))
    out_dir = os.environ["AETHER_OUTPUT_DIR"]
    ckpt_dir = os.environ["AETHER_CHECKPOINT_DIR"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device {device}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}", file=sys.stderr)

    names, x, y, order = load(os.environ["AETHER_DATASET_PATH"])
    n_val = max(1, len(order) // 5)
    train_idx, val_idx = order[: len(order) - n_val], order[len(order) - n_val :]
    xt, yt, xv, yv = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
    mean = torch.nan_to_num(torch.nanmean(xt, dim=0), nan=0.0)
    std = torch.sqrt(torch.nanmean((xt - mean) ** 2, dim=0)).nan_to_num(nan=1.0)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))

    torch.manual_seed(seed)
    random.seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(len(names), hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    model = Served(net, mean, std).to(device)
    opt = torch.optim.Adam(model.net.parameters(), lr=lr)
    start = 1
    resume = os.environ.get("AETHER_RESUME_CHECKPOINT")
    if resume:
        # On the CPU: the RNG states must stay CPU tensors; load_state_dict moves the rest.
        state = torch.load(resume, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            # The device it trains on only: a resume may see fewer GPUs than the checkpoint did.
            torch.cuda.set_rng_state(state["cuda_rng"])
        start = state["epoch"] + 1
        print(f"resuming after epoch {state['epoch']}", file=sys.stderr)

    loss_fn = torch.nn.BCELoss()
    xt_d, yt_d, xv_d = xt.to(device), yt.to(device), xv.to(device)
    for epoch in range(start, epochs + 1):
        model.train()
        perm = torch.randperm(len(train_idx))
        total = 0.0
        for s in range(0, len(perm), batch):
            idx = perm[s : s + batch].to(device)
            opt.zero_grad()
            p = model(xt_d[idx]).squeeze(1)
            loss = loss_fn(p, yt_d[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            pv = model(xv_d).squeeze(1).cpu().clamp(1e-7, 1 - 1e-7)
        val_loss = float(-(yv * pv.log() + (1 - yv) * (1 - pv).log()).mean())
        metrics = {"train_loss": total / len(perm), "val_loss": val_loss, "val_auc": auc(yv.tolist(), pv.tolist())}
        emit({"type": "epoch", "epoch": epoch, "epochs": epochs, "metrics": metrics})
        path = os.path.join(ckpt_dir, f"epoch-{epoch}.pt")
        torch.save(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate(),
                "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
            },
            path + ".tmp",
        )
        os.replace(path + ".tmp", path)
        emit({"type": "checkpoint", "epoch": epoch, "path": path})

    model_path = os.path.join(out_dir, "model.onnx")
    model.eval().cpu()
    torch.onnx.export(
        model,
        (torch.zeros(1, len(names)),),
        model_path,
        input_names=["features"],
        output_names=["probability"],
        dynamic_axes={"features": {0: "N"}, "probability": {0: "N"}},
        opset_version=17,
    )
    emit({"type": "model", "path": model_path, "format": "onnx", "features": names})


if __name__ == "__main__":
    try:
        main()
    except torch.cuda.OutOfMemoryError as e:  # another attempt, maybe elsewhere, may fit
        print(f"CUDA out of memory: {e}", file=sys.stderr)
        sys.exit(EXIT_RETRYABLE)
