/** The API key lives in this tab's session storage: pasted once, gone when the tab closes. */
const KEY = 'aether.apiKey';

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY);
}

export function storeKey(key: string): void {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(KEY);
}

export function graphqlUrl(): string {
  return `${location.origin}/graphql`;
}

export function websocketUrl(): string {
  return graphqlUrl().replace(/^http/, 'ws');
}
