# syntax=docker/dockerfile:1
#
# mcpgw container image: a static Go binary on an empty base.
#
#   docker build -t mcpgw --build-arg VERSION=1.2.3 --build-arg REVISION=$(git rev-parse HEAD) .
#   make image      # the same build with buildah, no daemon (see README, Deployment)
#
# The final stage is FROM scratch: no shell, no package manager, nothing to
# patch but the binary. It holds the binary, the CA certificates (backends,
# IdPs and bundle servers are reached over TLS) and a passwd entry for the
# non-root user. Nothing is written inside the image at run time, so it runs
# with a read-only root filesystem; mount writable volumes where the config
# points (policy.persist_dir, a SQLite store).

# GO_IMAGE is any image with the Go toolchain of go.mod, a POSIX shell and
# /etc/ssl/certs/ca-certificates.crt (the official golang images have all
# three). make image passes a locally assembled one where no registry is
# reachable.
ARG GO_IMAGE=docker.io/library/golang:1.26.8-bookworm

FROM ${GO_IMAGE} AS build
# GOPROXY is passed through so builds behind a module mirror work.
ARG GOPROXY
# VERSION is stamped into the binary: the build context has no .git for Go's
# own VCS stamp, so `mcpgw version` would say "(devel)".
ARG VERSION=dev
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath
WORKDIR /src
# Modules first: this layer (and the cache mount) survives source edits.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/cache/mod \
    GOMODCACHE=/cache/mod go mod download
COPY cmd/ cmd/
COPY gateway/ gateway/
COPY internal/ internal/
RUN --mount=type=cache,target=/cache/mod --mount=type=cache,target=/cache/build \
    GOMODCACHE=/cache/mod GOCACHE=/cache/build \
    go build -buildvcs=false -ldflags="-s -w -X main.buildVersion=${VERSION}" -o /out/usr/local/bin/mcpgw ./cmd/mcpgw
# The root filesystem of the final image: a passwd and group naming the
# non-root user (65532, as distroless calls it "nonroot"), the CA bundle, the
# config directory (a mount point) and /tmp; /data/mcpgw becomes the user's
# working directory.
RUN mkdir -p /out/etc/ssl/certs /out/etc/mcpgw /out/var/lib /out/tmp /data/mcpgw && \
    cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:mcpgw:/var/lib/mcpgw:/sbin/nologin\n' > /out/etc/passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' > /out/etc/group && \
    chmod 1777 /out/tmp && chmod 0700 /data/mcpgw

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
COPY --from=build /out/ /
# A directory's contents are what COPY copies, so the parent is named: this
# creates /var/lib/mcpgw itself owned by the user (--chown on an existing or
# empty directory would leave it root's).
COPY --from=build --chown=65532:65532 /data/ /var/lib/
USER 65532:65532
# Relative paths in a config (store.dsn file:mcpgw.db, policy.persist_dir
# bundles/last-good) land in the user's own directory.
WORKDIR /var/lib/mcpgw
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# 8000: server.listen (MCP, admin API, /healthz, minimal /readyz).
# 9090: server.metrics_listen, by convention (/metrics, detailed /readyz).
EXPOSE 8000 9090
ENTRYPOINT ["/usr/local/bin/mcpgw"]
CMD ["serve", "--config", "/etc/mcpgw/config.yaml"]
LABEL org.opencontainers.image.title="mcpgw" \
      org.opencontainers.image.description="Policy-as-code gateway for the Model Context Protocol" \
      org.opencontainers.image.source="https://github.com/mcpgw/mcpgw" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
