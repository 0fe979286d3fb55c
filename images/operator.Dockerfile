# The Weir operator: `node operator/src/main.ts` (Node 24 runs the TypeScript as it is).
# Build from the repository root:
#   docker build -f images/operator.Dockerfile -t <registry>/weir/operator:0.1.0 .
# It writes nothing outside /tmp, so it runs with a read-only root filesystem (the chart mounts
# an emptyDir at /tmp).
FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
# The operator shares code with the runtime (partition assignment, snapshot store, metrics).
COPY runtime/src ./runtime/src
COPY operator/src ./operator/src
# Not root: the chart's pod security context runs it as the same user.
USER 65532:65532
ENTRYPOINT ["node", "/app/operator/src/main.ts"]
