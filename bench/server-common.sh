# Shared by bench/h1-server and bench/h2-server: starts the application
# bench/server-app and nginx (one worker, the same 12-byte body and
# content-type) on free loopback ports in a temporary folder, pinned with
# taskset; prints the table rows. Sourced, not run.

BENCH_DIR=$(dirname "$(realpath "${BASH_SOURCE[0]}")")

server_bench_start() { # build-dir [http2]; BENCH_TLS=1: both over TLS (test certificates)
  local build=$1 listen_opt=${2:-} port_of ssl_conf="" ours_tls=()
  OURS_BIN=$(realpath "$build/bench/server-app")
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
  SCHEME=http
  if [ "${BENCH_TLS:-0}" = 1 ]; then
    "$BENCH_DIR/certs.sh" "$W"
    listen_opt="ssl $listen_opt"
    ssl_conf="ssl_certificate $W/server.pem; ssl_certificate_key $W/server.key;"
    ours_tls=(--cert "$W/server.pem" --key "$W/server.key")
    SCHEME=https
  fi
  cat > nginx.conf <<CONF
daemon off; worker_processes 1; pid $W/nginx.pid; error_log $W/error.log;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $W/b; proxy_temp_path $W/p; fastcgi_temp_path $W/f;
  uwsgi_temp_path $W/u; scgi_temp_path $W/s; keepalive_requests 1000000;
  server_tokens off;
  server { listen 127.0.0.1:$NGINX_PORT $listen_opt; $ssl_conf
    location / { default_type text/plain; return 200 "hello world\n"; } } }
CONF
  $SERVER_CPU nginx -p "$W" -c "$W/nginx.conf" -e "$W/error.log" & NGINX=$!
  # OURS_OPTS: more options for bench/server-app (bench/h1-server: --nginx-headers)
  $SERVER_CPU "$OURS_BIN" --port "$OURS_PORT" "${ours_tls[@]}" ${OURS_OPTS:-} > ours.out & OURS=$!
  for _ in $(seq 500); do
    if curl -skf -o /dev/null "$SCHEME://127.0.0.1:$NGINX_PORT/" 2>/dev/null ||
       curl -sf --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$NGINX_PORT/" 2>/dev/null; then
      grep -q ready ours.out && break
    fi
    kill -0 "$NGINX" || { echo "nginx did not start" >&2; exit 1; }
    kill -0 "$OURS" || { echo "bench/server-app did not start" >&2; exit 1; }
    sleep 0.01
  done
}

server_bench_cleanup() {
  [ -n "$OURS" ] && kill "$OURS" 2>/dev/null
  [ -n "$NGINX" ] && kill "$NGINX" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$W"
}

# A p99 of 0 (wrk measures no latency distribution for pipelined requests) prints as "-".
server_bench_print() { # name "ours_rps ours_p99" "nginx_rps nginx_p99" ["ours_best nginx_best"]
  local or op nr np ob nb
  read -r or op <<< "$2"; read -r nr np <<< "$3"; read -r ob nb <<< "${4:-0 0}"
  printf '%-22s %11s %11s %11s %11s %7s %7s %10s %10s %7s\n' run "ours req/s" "ours p99ms" \
    "nginx req/s" "nginx p99ms" "req/s x" "p99 x" "ours best" "nginx best" "best x"
  awk -v name="$1" -v or="$or" -v op="$op" -v nr="$nr" -v np="$np" -v ob="$ob" -v nb="$nb" \
    'function ms(v) { return v > 0 ? sprintf("%.3f", v) : "-" }
     BEGIN { printf "%-22s %11.0f %11s %11.0f %11s %7.2f %7s %10.0f %10.0f %7.2f\n", name, or, ms(op), nr, ms(np),
             or / nr, (np > 0 && op > 0 ? sprintf("%.2f", op / np) : "-"), ob, nb, (nb > 0 ? ob / nb : 0) }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# server_bench_rounds ROUNDS RUN_FN: alternates RUN_FN ours / RUN_FN nginx ROUNDS times (so
# that load from elsewhere hits both alike) and prints "ours_rps ours_p99 nginx_rps nginx_p99",
# each the median of its rounds. RUN_FN URL prints "req/s p99_ms".
server_bench_rounds() {
  local rounds=$1 fn=$2 i o n
  : > ours.rounds; : > nginx.rounds
  for i in $(seq "$rounds"); do
    o=$($fn "$SCHEME://127.0.0.1:$OURS_PORT/"); echo "$o" >> ours.rounds
    n=$($fn "$SCHEME://127.0.0.1:$NGINX_PORT/"); echo "$n" >> nginx.rounds
    echo "# round $i: ours $o, nginx $n" >&2
  done
  echo "$(awk '{ print $1 }' ours.rounds | median) $(awk '{ print $2 }' ours.rounds | median)" \
       "$(awk '{ print $1 }' nginx.rounds | median) $(awk '{ print $2 }' nginx.rounds | median)" \
       "$(awk '{ print $1 }' ours.rounds | sort -g | tail -1) $(awk '{ print $1 }' nginx.rounds | sort -g | tail -1)"
}
