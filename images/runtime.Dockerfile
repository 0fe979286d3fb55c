# Weir's runtime, the process of every job pod: `node runtime/src/main.ts <job module>`.
# A StreamJob names the job module inside the image (spec.job.entry), e.g. the examples:
# /app/runtime/examples/word-count.ts. Build from the repository root:
#   docker build -f images/runtime.Dockerfile -t <registry>/weir/runtime:0.1.0 .
# Your own jobs: FROM this image, COPY your module (and `npm install` what it needs) under /app.
# It writes nothing outside /tmp (the operator gives every job pod an emptyDir there), so it
# runs with a read-only root filesystem.
FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY runtime/src ./runtime/src
COPY runtime/examples ./runtime/examples
# Not root: the operator's job pods run as the same user.
USER 65532:65532
ENTRYPOINT ["node", "/app/runtime/src/main.ts"]
