#!/usr/bin/env bash
# Installs the gateways bench/run.py compares unigate with, for scale, into the repository's
# ignored bench/.work/compare/ (never into the project's own venv or dev dependencies):
#
#   bench/.work/compare/litellm/      a venv with litellm[proxy] (LiteLLM's proxy server)
#   bench/.work/compare/portkey/      an npm prefix with @portkey-ai/gateway (run with node)
#
#   bench/compare/setup.sh [litellm] [portkey]     # both when none is named
#
# Versions: LITELLM_VERSION / PORTKEY_VERSION pin one (default: the registry's latest).
# bench/run.py finds them there and skips either cleanly when it is not installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/bench/.work/compare"
mkdir -p "$dest"
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(litellm portkey)

for what in "${want[@]}"; do
  case "$what" in
    litellm)
      python="${PYTHON:-python3}"
      test -x "$dest/litellm/bin/python" || "$python" -m venv "$dest/litellm"
      "$dest/litellm/bin/python" -m pip install -q --upgrade pip
      spec="litellm[proxy]"
      [ -n "${LITELLM_VERSION:-}" ] && spec="litellm[proxy]==$LITELLM_VERSION"
      "$dest/litellm/bin/python" -m pip install -q "$spec"
      echo "litellm: $("$dest/litellm/bin/python" -m pip show litellm | sed -n 's/^Version: //p') in $dest/litellm"
      ;;
    portkey)
      command -v node >/dev/null || { echo "portkey: node is not on PATH" >&2; exit 2; }
      spec="@portkey-ai/gateway"
      [ -n "${PORTKEY_VERSION:-}" ] && spec="@portkey-ai/gateway@$PORTKEY_VERSION"
      mkdir -p "$dest/portkey"
      # --prefix: a private node_modules; no global install, no audit/fund calls.
      npm install --prefix "$dest/portkey" --no-audit --no-fund --omit=dev "$spec"
      echo "portkey: $(node -p "require('$dest/portkey/node_modules/@portkey-ai/gateway/package.json').version") in $dest/portkey"
      ;;
    *)
      echo "unknown: $what (litellm or portkey)" >&2
      exit 2
      ;;
  esac
done
