import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Two pages: the console (index.html) and the standalone GraphiQL that the api serves to
// browsers at /graphql (graphiql.html). Hashed assets under /assets are cached for ever.
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 5_000,
    rollupOptions: { input: { main: 'index.html', graphiql: 'graphiql.html' } },
  },
  server: { proxy: { '/graphql': { target: 'http://localhost:4000', ws: true } } },
});
