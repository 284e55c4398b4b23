#!/usr/bin/env bash
# The runtime dependencies the GPU machine lacks, as cp312 manylinux wheels in .whl/ (ignored by
# git; name it in the device run's `carry`). Its image already has torch, numpy, pandas, pyarrow,
# scikit-learn, typer, rich, prometheus-client, safetensors, pyyaml, pytest and matplotlib
# (issue 18; /work/.library/device/KINDS.md). Versions: the ones the project's venv runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
mkdir -p .whl
for wheel in pydantic==2.14.4 pydantic-core==2.50.5 pydantic-settings==2.16.3 \
    python-dotenv==1.2.4 annotated-types==0.8.0 typing-inspection==0.4.5 captum==0.9.0 \
    redis==8.2.0 hiredis==3.5.0 kafka-python==3.0.12 aiokafka==0.14.0 async-timeout==5.0.1 \
    orjson==3.13.0 msgspec==0.23.0 confluent-kafka==2.16.1; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "$wheel"
done
ls .whl
