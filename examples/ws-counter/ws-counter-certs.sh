#!/bin/sh
# SPDX-License-Identifier: MIT
# ws-counter-certs.sh DIR: a test CA (ca.pem) and a certificate for localhost,
# 127.0.0.1 and ::1 signed by it (server.pem, server.key), made with certtool
# (gnutls-bin) unless DIR has them already. Browsers will not know the CA:
# accept the warning once, or import DIR/ca.pem.
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
[ -s server.pem ] && [ -s server.key ] && [ -s ca.pem ] && exit 0
umask 077
certtool --generate-privkey --key-type=ecdsa --outfile ca.key 2>/dev/null
printf 'cn = "ws-counter example CA"\nca\ncert_signing_key\nexpiration_days = 365\n' > ca.tmpl
certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem 2>/dev/null
certtool --generate-privkey --key-type=ecdsa --outfile server.key 2>/dev/null
printf 'cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\nip_address = "::1"\ntls_www_server\nsigning_key\nexpiration_days = 365\n' > server.tmpl
certtool --generate-certificate --load-privkey server.key --load-ca-certificate ca.pem \
    --load-ca-privkey ca.key --template server.tmpl --outfile server.pem 2>/dev/null
rm -f ca.tmpl server.tmpl ca.key
chmod 644 ca.pem server.pem
