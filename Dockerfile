# syntax=docker/dockerfile:1
#
# The inference server (and the model puller, same image) on CPU.
#
#   docker build -t registry.example.com/inference-runtime:0.1.0 .
#   docker run --rm -p 8080:8080 --read-only registry.example.com/inference-runtime:0.1.0
#
# Node 24 LTS on Debian bookworm, pinned by version (pin by digest too in your own
# builds: FROM node:24.21.0-bookworm-slim@sha256:...). The GPU variant is Dockerfile.gpu. Both run as uid 65532 with nothing to write at
# run time: the server and the puller only write to the model volume (/mnt/models),
# so the root filesystem can be read-only.

# --- build: all dependencies (esbuild is a devDependency), then the bundle in dist/ ---
FROM node:24.21.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: the package's prepare script would build before the sources are here.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY scripts/ scripts/
COPY runtime/src/ runtime/src/
RUN npm run build

# --- deps: production dependencies only ---
FROM node:24.21.0-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: prepare needs esbuild, which --omit=dev leaves out, and the bundle comes
# from the build stage. onnxruntime-node ships its CPU binaries in the package itself.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force

# --- runtime ---
FROM node:24.21.0-bookworm-slim
# PORT: the server reads it (default 8080); Knative sets it.
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY --from=deps /app/node_modules/ node_modules/
COPY --from=build /app/dist/ dist/
COPY package.json ./
COPY bin/ bin/
# The gRPC service definitions, read at start-up when PROTOCOL=grpc, and the SQL migrations
# the async store applies (ASYNC_INFERENCE) and the migration Job runs (bin/migrate.js).
COPY runtime/proto/ runtime/proto/
COPY runtime/migrations/ runtime/migrations/
# The example models: served by default (MODEL_REPOSITORY=./models), and the default
# source of the model puller in the Knative manifests (file:///app/models/sentiment).
COPY models/ models/
USER 65532:65532
EXPOSE 8080
# Exec form: node is PID 1 and receives SIGTERM from Kubernetes directly, and the server
# drains and exits. The model puller runs from the same image:
#   command: ["node", "/app/bin/model-puller.js"]
ENTRYPOINT ["node", "bin/inference-server.js"]
