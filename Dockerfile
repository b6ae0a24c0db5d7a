# One image for both processes: `api` (HTTP) and `worker` (Temporal), chosen by the command.
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# Dev tooling (embedded PostgreSQL, vitest, the pinned Node) stays out: containers use the postgres service.
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=warn
COPY tsconfig.json ./
COPY api ./api
COPY activities ./activities
COPY db ./db
COPY domain ./domain
COPY platform ./platform
COPY scripts ./scripts
COPY worker ./worker
COPY workflows ./workflows
USER node
EXPOSE 3000
CMD ["node", "--import", "tsx", "api/server.ts"]
