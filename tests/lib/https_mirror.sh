# A local HTTPS mirror for shell tests: `source tests/lib/https_mirror.sh`, then
#   kmr_https_mirror ROOT DIR
# makes a test CA and a certificate for localhost in DIR (openssl), serves ROOT
# over HTTPS on 127.0.0.1 (python3's http.server in a TLS socket), and sets
#   KMR_MIRROR_URL  https://localhost:PORT
#   KMR_MIRROR_CA   the CA certificate (PEM), e.g. for SSL_CERT_FILE or curl --cacert
#   KMR_MIRROR_PID  the server's pid (the caller stops it)
# Each request is appended to DIR/mirror.log as "GET /path". Returns 1 when the
# certificates cannot be made or the server does not start.
kmr_https_mirror() {
  local root=$1 dir=$2 _
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kmr test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1 &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$dir/srv.key" -out "$dir/srv.csr" >/dev/null 2>&1 &&
    printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/ext" &&
    openssl x509 -req -in "$dir/srv.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
      -extfile "$dir/ext" -out "$dir/srv.pem" >/dev/null 2>&1 || return 1
  rm -f "$dir/mirror.port"
  python3 - "$root" "$dir/srv.pem" "$dir/srv.key" "$dir/mirror.port" "$dir/mirror.log" <<'PY' &
import functools, http.server, ssl, sys
root, cert, key, port_file, log = sys.argv[1:]
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.command, self.path))
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=root))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(port_file, "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY
  KMR_MIRROR_PID=$!
  for _ in $(seq 100); do [[ -s $dir/mirror.port ]] && break; sleep 0.1; done
  [[ -s $dir/mirror.port ]] || return 1
  KMR_MIRROR_URL=https://localhost:$(cat "$dir/mirror.port")
  KMR_MIRROR_CA=$dir/ca.pem
}
