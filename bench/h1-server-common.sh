# Shared by bench/h1-server-vs-nginx and bench/h2-server-vs-nginx: starts
# bench/h1-server and nginx (one worker, the same 12-byte body and
# content-type) on free loopback ports in a temporary folder, pinned with
# taskset; prints the table rows. Sourced, not run.

server_bench_start() { # build-dir [http2]
  local build=$1 listen_opt=${2:-} port_of
  OURS_BIN=$(realpath "$build/bench/h1-server")
  W=$(mktemp -d); NGINX=; OURS=
  trap 'server_bench_cleanup' EXIT
  chmod 755 "$W"; cd "$W"
  SERVER_CPUS=; LOAD_CPUS=; SERVER_CPU=; LOAD_CPU=
  if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    SERVER_CPUS=1; LOAD_CPUS=0; SERVER_CPU="taskset -c 1"; LOAD_CPU="taskset -c 0"
  fi
  port_of() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  OURS_PORT=$(port_of); NGINX_PORT=$(port_of)
  while [ "$NGINX_PORT" = "$OURS_PORT" ]; do NGINX_PORT=$(port_of); done
  cat > nginx.conf <<CONF
daemon off; worker_processes 1; pid $W/nginx.pid; error_log $W/error.log;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $W/b; proxy_temp_path $W/p; fastcgi_temp_path $W/f;
  uwsgi_temp_path $W/u; scgi_temp_path $W/s; keepalive_requests 1000000;
  server_tokens off;
  server { listen 127.0.0.1:$NGINX_PORT $listen_opt;
    location / { default_type text/plain; return 200 "hello world\n"; } } }
CONF
  $SERVER_CPU nginx -p "$W" -c "$W/nginx.conf" -e "$W/error.log" & NGINX=$!
  $SERVER_CPU "$OURS_BIN" --port "$OURS_PORT" > ours.out & OURS=$!
  for _ in $(seq 500); do
    if curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/" 2>/dev/null ||
       curl -sf --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$NGINX_PORT/" 2>/dev/null; then
      grep -q ready ours.out && break
    fi
    kill -0 "$NGINX" || { echo "nginx did not start" >&2; exit 1; }
    kill -0 "$OURS" || { echo "bench/h1-server did not start" >&2; exit 1; }
    sleep 0.01
  done
}

server_bench_cleanup() {
  [ -n "$OURS" ] && kill "$OURS" 2>/dev/null
  [ -n "$NGINX" ] && kill "$NGINX" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$W"
}

server_bench_print() { # name "ours_rps ours_p99" "nginx_rps nginx_p99"
  local or op nr np
  read -r or op <<< "$2"; read -r nr np <<< "$3"
  printf '%-22s %12s %12s %12s %12s %8s %8s\n' run "ours req/s" "ours p99 ms" "nginx req/s" "nginx p99 ms" "req/s x" "p99 x"
  awk -v name="$1" -v or="$or" -v op="$op" -v nr="$nr" -v np="$np" \
    'BEGIN { printf "%-22s %12.0f %12.3f %12.0f %12.3f %8.2f %8.2f\n", name, or, op, nr, np, or / nr, (np > 0 ? op / np : 0) }'
}
