#!/usr/bin/env bash
# Create the virtual environments of the peer tools that tests/dse/test_export_*.py run
# for real. Idempotent and quiet: an environment that already imports its tool is kept.
#
#   DSE_PEER_VENVS   parent folder of the venvs (default: $HOME/.cache/dse-peer-venvs)
#   DSE_PEER_PYTHON  interpreter that creates them (default: python3; needs >= 3.10 and
#                    the same minor version as the one running pytest for the chakra venv)
#
# Venvs (the tests find them there, or through the variables in brackets):
#   scalesim/  scalesim==3.0.0 with numpy<2            [DSE_SCALESIM_PYTHON]
#   zigzag/    zigzag-dse==3.9.1 and six               [DSE_ZIGZAG_PYTHON]
#   chakra/    mlc-chakra==1.0.0 (no deps) + protobuf  [DSE_CHAKRA_PYTHON]
# A failed install prints one line and leaves the other venvs alone; the tests that need
# the missing tool then skip with the reason.
set -u
ROOT="${DSE_PEER_VENVS:-$HOME/.cache/dse-peer-venvs}"
PY="${DSE_PEER_PYTHON:-python3}"
mkdir -p "$ROOT"
status=0

make_venv() {  # name, import check, pip args...
  local name="$1" check="$2"; shift 2
  local venv="$ROOT/$name"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    return 0
  fi
  rm -rf "$venv"
  if "$PY" -m venv "$venv" >/dev/null 2>&1 \
     && "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" \
        >"$ROOT/$name.log" 2>&1 \
     && "$venv/bin/python" -c "$check" >>"$ROOT/$name.log" 2>&1; then
    echo "setup_peer_tools: $name ready in $venv"
  else
    echo "setup_peer_tools: $name install failed (see $ROOT/$name.log); its tests will skip"
    status=1
  fi
}

make_venv scalesim "import scalesim.scale_sim" "scalesim==3.0.0" "numpy<2"
make_venv zigzag "import zigzag.api" "zigzag-dse==3.9.1" "six"
make_venv chakra "from chakra.schema.protobuf import et_def_pb2" --no-deps "mlc-chakra==1.0.0" "protobuf>=5"
if [ "${DSE_PEER_ALL:-0}" = "1" ]; then  # the reference generators' tools (benchmarks only)
  make_venv genz "import GenZ" "genz-llm==0.0.16" "PyYAML"
  make_venv llm-analysis "import llm_analysis" "llm-analysis==0.2.2"
fi
exit $status
