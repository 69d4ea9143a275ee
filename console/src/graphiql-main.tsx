import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { AetherGraphiQL } from './graphiql';
import { storedKey } from './session';

// The page the api serves to browsers at /graphql: GraphiQL alone, with the console's key
// when this tab signed in to the console.
createRoot(document.getElementById('graphiql') as HTMLElement).render(
  <StrictMode>
    <AetherGraphiQL apiKey={storedKey()} />
  </StrictMode>,
);
