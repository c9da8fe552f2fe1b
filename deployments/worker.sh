#!/usr/bin/env bash
# A Prefect worker for i2v-pipeline on this machine; its flow runs use the code of the
# clone this script lives in (it sets I2V_HOME, which prefect.yaml's pull step reads).
#
#   deployments/worker.sh [more `prefect worker start` options, e.g. --name box-1]
#
# Environment: PREFECT_API_URL (the server; required); AIMLAPI_API_KEY unless the server
# holds the key in a Secret block; AWS_* for S3 as for `i2v run`; AIMLAPI_BASE_URL
# (optional); I2V_POOL (default i2v); I2V_WORKER_LIMIT, flow runs at once (default 3).
# Keep I2V_WORKER_LIMIT below a fan-out's shard count, or the first worker to poll takes
# every shard; a fan-out's parent takes one of those places while it waits.
set -euo pipefail
I2V_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export I2V_HOME
if [[ -z "${PREFECT_API_URL:-}" ]]; then
    echo "PREFECT_API_URL is not set: point it at your Prefect server (http://HOST:4200/api)" >&2
    exit 2
fi
exec "$I2V_HOME/.venv/bin/prefect" worker start --pool "${I2V_POOL:-i2v}" --type process \
    --limit "${I2V_WORKER_LIMIT:-3}" "$@"
