# rotor: one image for the worker, the HTTP service and the CLI (migrations, rotations, schedules).
# The image runs the compiled dist/ (`npm run build`: tsc, plus the workflow bundle built ahead of
# time) with plain node; TypeScript, tsx and the other devDependencies stay in the build stage.

# pkcs11js compiles a native addon at install time; the compilers stay in this stage.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# softhsm2 gives the image a PKCS#11 module to run the pkcs11 custodian against; a real HSM's
# module is mounted in its place and named by ROTOR_PKCS11_MODULE.
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    SOFTHSM2_CONF=/etc/rotor/softhsm2.conf \
    ROTOR_SOFTWARE_KEY_DIR=/var/lib/rotor/keys \
    ROTOR_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so \
    ROTOR_HTTP_HOST=0.0.0.0 \
    ROTOR_HTTP_PORT=8080
# Token and key folders belong to the unprivileged user before they become volumes, so a fresh
# named volume inherits that ownership.
RUN mkdir -p /etc/rotor /var/lib/rotor/keys /var/lib/rotor/softhsm/tokens \
 && printf 'directories.tokendir = /var/lib/rotor/softhsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
      > /etc/rotor/softhsm2.conf \
 && chown -R node:node /var/lib/rotor \
 && chmod 0700 /var/lib/rotor/keys /var/lib/rotor/softhsm/tokens
WORKDIR /app
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node package.json package-lock.json ./
COPY --chown=node:node bin ./bin
USER node
EXPOSE 8080
# tini forwards SIGTERM so a worker drains its activities instead of being killed mid-batch.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "bin/rotor.mjs", "--help"]
