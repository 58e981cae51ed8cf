#!/usr/bin/env bash
# Installs, only when missing, what the native local stack needs from the OS:
# a Java runtime (17+), Maven (resolves the Kafka/Connect/Debezium jars), the
# PostgreSQL server binaries, and Chromium with its driver (the status page's
# browser test). Debian/Ubuntu (apt-get); run as root or with sudo.
set -euo pipefail

need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# the SASL_SSL test makes its CA and broker certificate with openssl
command -v openssl >/dev/null 2>&1 || need+=(openssl)

if [ "${#need[@]}" -eq 0 ]; then
  echo "system packages: java, mvn, PostgreSQL and Chromium already installed"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-system-deps: need root (or sudo) to apt-get install ${need[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: no apt-get here; install ${need[*]} by hand" >&2
  exit 1
fi

echo "system packages: installing ${need[*]}"
"${sudo[@]}" apt-get update -qq
# the Debian package would also start a default cluster on port 5432: the stack
# makes its own, so ask postgresql-common not to create one (when it is new here)
if [[ " ${need[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
  "${sudo[@]}" mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | "${sudo[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
