#!/usr/bin/env bash
# Check docs/asyncapi.json: current with contracts/ (`python -m contracts.asyncapi --check`) and
# valid under the official AsyncAPI parser (`asyncapi validate` of the @asyncapi/cli npm package).
# The CLI is installed on first use into .asyncapi/ (gitignored); ASYNCAPI_CLI=/path/to/asyncapi
# uses an existing binary instead. Usage: scripts/asyncapi_validate.sh [DOCUMENT]
set -euo pipefail
cd "$(dirname "$0")/.."

doc=${1:-docs/asyncapi.json}
prefix=${ASYNCAPI_PREFIX:-.asyncapi}
cli_major=6 # @asyncapi/cli 6.x validates AsyncAPI 3.0 documents
python=${VENV:-.venv}/bin/python

if [[ "$doc" == docs/asyncapi.json && -x "$python" ]]; then
    "$python" -m contracts.asyncapi --check "$doc"
fi

cli=${ASYNCAPI_CLI:-$prefix/node_modules/.bin/asyncapi}
if [[ ! -x "$cli" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "error: npm is needed to install @asyncapi/cli (apt-get install nodejs npm)" >&2
        exit 1
    fi
    echo "installing @asyncapi/cli@$cli_major into $prefix/ ..." >&2
    npm install --prefix "$prefix" --no-fund --no-audit --loglevel=error "@asyncapi/cli@$cli_major" >&2
fi

# No usage metrics sent from developer machines or CI, and no node-config start-up noise.
metrics_config="$prefix/analytics.json"
if [[ -z "${ASYNCAPI_METRICS_CONFIG_PATH:-}" ]]; then
    mkdir -p "$prefix"
    if [[ ! -f "$metrics_config" ]]; then
        echo '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"none"}' \
            >"$metrics_config"
    fi
    export ASYNCAPI_METRICS_CONFIG_PATH="$metrics_config"
fi
export SUPPRESS_NO_CONFIG_WARNING=1 NODE_CONFIG_ENV=development

"$cli" validate "$doc" --fail-severity "${ASYNCAPI_FAIL_SEVERITY:-error}"
