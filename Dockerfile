# syntax=docker/dockerfile:1
#
# flagproxy, the reverse proxy that decides a Django site's feature flags.
#
#   docker build -t flagproxy .
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -e FLAGPROXY_UPSTREAM=http://django:8000 \
#     -e FLAGPROXY_DATABASE=postgres://flagproxy:secret@db:5432/app \
#     -e FLAGPROXY_SECRET_KEY="$DJANGO_SECRET_KEY" \
#     flagproxy
#
# Every option of `flagproxy serve` can be given as an environment variable
# FLAGPROXY_<NAME> or as arguments after the image name
# (`docker run flagproxy serve --django-settings /etc/flagproxy/settings.json`).
# See docs/docker.md.

# The Go release of go.mod. The golang images set GOTOOLCHAIN=local, so an
# older image would refuse to build the module instead of fetching the toolchain.
ARG GO_VERSION=1.26.8

# ---- build ----------------------------------------------------------------
# The SQLite driver (github.com/mattn/go-sqlite3) is C code: cgo must be on,
# and the binary links the builder's glibc. The runtime stage therefore uses
# the same Debian release (bookworm) as this one.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o /out/flagproxy ./cmd/flagproxy

# ---- runtime --------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: for PostgreSQL over TLS (?sslmode=verify-full).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin flagproxy \
 && install -d -o flagproxy -g flagproxy /data
COPY --from=build /out/flagproxy /usr/local/bin/flagproxy

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# A relative SQLite URL (the default sqlite:///db.sqlite3) resolves here:
# mount the Django site's database file into /data.
WORKDIR /data

# Inside a container, listen on every interface; publish only 8080, and keep
# the admin port (/healthz, /readyz, /metrics) on a private network.
ENV FLAGPROXY_LISTEN=0.0.0.0:8080 \
    FLAGPROXY_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090

# Healthy once the first snapshot of the flag tables is loaded. The image has
# no curl: bash speaks HTTP/1.0 to the admin port itself. Change the port here
# if you move FLAGPROXY_ADMIN_LISTEN.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /readyz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# SIGTERM: flagproxy stops accepting, finishes requests in flight (up to 10 s) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["flagproxy"]
CMD ["serve"]
