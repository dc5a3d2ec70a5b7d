#!/bin/sh
# SPDX-License-Identifier: MIT
# certs.sh DIR: a throwaway CA (ca.pem) and a certificate for localhost and
# 127.0.0.1 signed by it (server.pem, server.key), valid for 2 days, made with
# certtool in DIR for the TLS runs of the benchmarks (nginx and ours).
set -eu
cd "$1"
certtool --generate-privkey --key-type=ecdsa --outfile ca.key 2>/dev/null
printf 'cn = "Bench CA"\nca\ncert_signing_key\nexpiration_days = 2\n' > ca.tmpl
certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem 2>/dev/null
certtool --generate-privkey --key-type=ecdsa --outfile server.key 2>/dev/null
printf 'cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\nexpiration_days = 2\n' > server.tmpl
certtool --generate-certificate --load-privkey server.key --load-ca-certificate ca.pem \
  --load-ca-privkey ca.key --template server.tmpl --outfile server.pem 2>/dev/null
