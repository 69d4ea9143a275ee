// Monaco's workers for GraphiQL, bundled by Vite from the project's own packages (no CDN).
// Kept in our sources rather than imported from graphiql/setup-workers/vite: Vite's dev
// pre-bundler cannot follow `?worker` imports inside node_modules.
import EditorWorker from 'monaco-editor/esm/vs/editor/editor.worker.js?worker';
import JsonWorker from 'monaco-editor/esm/vs/language/json/json.worker.js?worker';
import GraphQLWorker from 'monaco-graphql/esm/graphql.worker.js?worker';

(globalThis as { MonacoEnvironment?: unknown }).MonacoEnvironment = {
  getWorker(_id: string, label: string): Worker {
    if (label === 'json') return new JsonWorker();
    if (label === 'graphql') return new GraphQLWorker();
    return new EditorWorker();
  },
};
