import { Hono } from 'hono';
import { serveAsset } from '../static-asset.js';

// GraphiQL and React come from npm, served by us: the explorer works with no internet access.
const ASSETS: Record<string, [pkg: string, file: string, type: string]> = {
  'react.js': ['react', 'umd/react.production.min.js', 'text/javascript'],
  'react-dom.js': ['react-dom', 'umd/react-dom.production.min.js', 'text/javascript'],
  'graphiql.js': ['graphiql', 'graphiql.min.js', 'text/javascript'],
  'graphiql.css': ['graphiql', 'graphiql.min.css', 'text/css'],
};

export function explorerAssets() {
  const app = new Hono();
  app.get('/:name', (c) => {
    const asset = ASSETS[c.req.param('name')];
    return asset ? serveAsset(c, ...asset) : c.notFound();
  });
  return app;
}

export const explorerPage = () => `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <title>CRM GraphQL explorer</title>
  <link rel="stylesheet" href="/graphql/assets/graphiql.css" />
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
</head>
<body>
  <div id="graphiql">Loading…</div>
  <script src="/graphql/assets/react.js"></script>
  <script src="/graphql/assets/react-dom.js"></script>
  <script src="/graphql/assets/graphiql.js"></script>
  <script>
    // Paste a token from \`npm run token\` into the Headers tab: {"Authorization": "Bearer ..."}
    // A link can open the explorer on a query: /graphql?query=<url-encoded query> (npm run demo prints one).
    const fetcher = GraphiQL.createFetcher({ url: '/graphql' });
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {
        fetcher,
        query: new URLSearchParams(location.search).get('query') ?? undefined,
        defaultHeaders: JSON.stringify({ Authorization: 'Bearer <token from npm run token>' }, null, 2),
        shouldPersistHeaders: true,
      }),
    );
  </script>
</body>
</html>`;
