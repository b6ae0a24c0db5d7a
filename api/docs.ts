import { Hono } from 'hono';
import { serveAsset } from './static-asset.js';
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css',
  'swagger-ui-bundle.js': 'text/javascript',
};

// Swagger UI from the swagger-ui-dist npm package (no CDN), reading /api/v1/openapi.json.
export function docsRoutes() {
  const app = new Hono();
  app.get('/docs', (c) =>
    c.html(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8" /><title>CRM REST API</title><link rel="stylesheet" href="/docs/assets/swagger-ui.css" /></head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>window.ui = SwaggerUIBundle({ url: '/api/v1/openapi.json', dom_id: '#swagger-ui', persistAuthorization: true });</script>
</body>
</html>`),
  );
  app.get('/docs/assets/:name', (c) => {
    const name = c.req.param('name');
    const type = ASSETS[name];
    return type ? serveAsset(c, 'swagger-ui-dist', name, type) : c.notFound();
  });
  return app;
}
