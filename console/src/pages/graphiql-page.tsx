import { storedKey } from '../session';
import { AetherGraphiQL } from '../graphiql';

export default function GraphiQLPage() {
  return (
    <div className="graphiql-page">
      <AetherGraphiQL apiKey={storedKey()} />
    </div>
  );
}
