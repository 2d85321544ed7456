#!/usr/bin/env bash
# System packages `make run` wants (Debian 12): espeak-ng speaks the IVR prompts from the texts
# in config.toml. Without it (not root, no network) the platform still runs: the IVR uses tone
# placeholders and the log says how to fix it.
#
# Idempotent: when everything is installed it exits without touching apt.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
PACKAGES=(espeak-ng)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-run-deps: ${missing[*]} missing and not root: IVR prompts will be tones" \
         "(as root: apt-get install ${missing[*]})" >&2
    exit 0
fi
echo "install-run-deps: installing ${missing[*]}"
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}" || \
    echo "install-run-deps: could not install ${missing[*]}: IVR prompts will be tones" >&2
