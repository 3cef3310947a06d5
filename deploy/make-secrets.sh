#!/bin/sh
# A CA and a broker certificate for deploy/minikafka.yml's SASL_SSL listener, in deploy/secrets/
# (git-ignored). For a test or a private network: give clients secrets/ca.pem
# (ssl.ca.location). For anything public, put a certificate from your own CA there instead.
# Usage: deploy/make-secrets.sh [broker host name, default localhost]
set -eu
host=${1:-localhost}
dir=$(dirname "$0")/secrets
mkdir -p "$dir" && chmod 700 "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=minikafka test CA" \
  -keyout ca.key -out ca.pem
openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" -keyout broker.key -out broker.csr
printf 'subjectAltName=DNS:%s,DNS:minikafka,IP:127.0.0.1\n' "$host" > san.ext
openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
  -extfile san.ext -out broker.pem
rm broker.csr san.ext
chmod 644 broker.pem ca.pem && chmod 640 broker.key ca.key
echo "made $dir/broker.pem, broker.key and ca.pem (for clients)"
