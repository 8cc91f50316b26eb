#!/usr/bin/env bash
# Teste de fumaça do modo completo na CPU (para os mantenedores; o .ci/run o roda depois do conjunto rápido).
#
# Roda os notebooks com LLM_MODO=completo e LLM_FUMACA=1: todas as configurações e caminhos do modo completo,
# mas poucos passos, poucos dados e poucas avaliações (SMOKE_LIMITS, capítulo 00). Os pesos do GPT-2 vêm de um
# espelho temporário com pesos sorteados no formato real (ferramentas/pesos_gpt2_sinteticos.py), ao lado dos
# dados de LLM_DADOS_ESPELHO; downloads e artefatos vão para pastas temporárias, que somem no fim, para que os
# pesos sorteados nunca parem no cache de verdade.
#
# Uso:
#   LLM_DADOS_ESPELHO=../shared/dados bash ferramentas/fumaca.sh                  # os nove capítulos
#   LLM_DADOS_ESPELHO=../shared/dados bash ferramentas/fumaca.sh 06-finetuning    # só um (sem o checkpoint do 05)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${LLM_DADOS_ESPELHO:-}" ] || [ ! -d "$LLM_DADOS_ESPELHO" ]; then
    echo "Defina LLM_DADOS_ESPELHO com a pasta do espelho dos dados (por exemplo ../shared/dados)." >&2
    exit 1
fi
ORIGEM="$(cd "$LLM_DADOS_ESPELHO" && pwd)"
TEMPORARIA="$(mktemp -d)"
trap 'rm -rf "$TEMPORARIA"' EXIT
mkdir -p "$TEMPORARIA/espelho" "$TEMPORARIA/cache" "$TEMPORARIA/artefatos"
for item in "$ORIGEM"/*; do
    ln -s "$item" "$TEMPORARIA/espelho/"
done
python3 ferramentas/pesos_gpt2_sinteticos.py "$TEMPORARIA/espelho"

if [ "$#" -eq 0 ]; then
    set -- 0*-*/notebook.ipynb
fi
alvos=()
for capitulo in "$@"; do
    capitulo="${capitulo%/}"
    case "$capitulo" in
        *.ipynb) alvos+=("$capitulo") ;;
        *) alvos+=("$capitulo/notebook.ipynb") ;;
    esac
done

LLM_MODO=completo LLM_FUMACA=1 \
LLM_DADOS_ESPELHO="$TEMPORARIA/espelho" \
TIKTOKEN_CACHE_DIR="${TIKTOKEN_CACHE_DIR:-$ORIGEM/tiktoken}" \
LLM_CACHE_DIR="$TEMPORARIA/cache" \
LLM_ARTEFATOS="$TEMPORARIA/artefatos" \
MPLBACKEND=Agg PYTHONUNBUFFERED=1 \
    python3 -m pytest --durations=0 "${alvos[@]}"
