#!/usr/bin/env bash
# Teste de fumaça do modo completo na CPU (para os mantenedores; o .ci/run o roda depois do conjunto rápido).
#
# Roda os notebooks com LLM_MODO=completo e LLM_FUMACA=1: todas as configurações e caminhos do modo completo,
# mas poucos passos, poucos dados e poucas avaliações (SMOKE_LIMITS, capítulo 00). Os pesos do GPT-2 vêm de um
# espelho temporário com pesos sorteados no formato real (ferramentas/pesos_gpt2_sinteticos.py), ao lado dos
# dados de LLM_DADOS_ESPELHO; downloads, artefatos e o cache do tiktoken vão para pastas temporárias, que somem no
# fim, para que os pesos sorteados nunca parem no espelho nem no cache de verdade.
#
# O espelho temporário não tem nenhum link de pasta: as pastas do espelho de verdade são recriadas dentro da pasta
# temporária e só os arquivos viram links. Os pesos sorteados são gravados num arquivo novo (um `.part` renomeado
# no fim), depois de apagado qualquer link no lugar. Se o caminho dos pesos levasse para fora da pasta temporária
# (por exemplo, com TMPDIR dentro do espelho de verdade), o teste se recusa a começar e sai com código 1.
#
# Uso:
#   LLM_DADOS_ESPELHO=../shared/dados bash ferramentas/fumaca.sh                  # os nove capítulos
#   LLM_DADOS_ESPELHO=../shared/dados bash ferramentas/fumaca.sh 06-finetuning    # só um (sem o checkpoint do 05)
set -euo pipefail
RAIZ="$(cd "$(dirname "$0")/.." && pwd)"

# O espelho pode ser relativo à pasta atual ou à raiz do repositório (como no capítulo 00).
ORIGEM=""
for candidato in "${LLM_DADOS_ESPELHO:-}" "$RAIZ/${LLM_DADOS_ESPELHO:-}"; do
    if [ -n "${LLM_DADOS_ESPELHO:-}" ] && [ -d "$candidato" ]; then
        ORIGEM="$(cd "$candidato" && pwd -P)"
        break
    fi
done
if [ -z "$ORIGEM" ]; then
    echo "Defina LLM_DADOS_ESPELHO com a pasta do espelho dos dados (por exemplo ../shared/dados)." >&2
    exit 1
fi
TIKTOKEN_ORIGEM="${TIKTOKEN_CACHE_DIR:-$ORIGEM/tiktoken}"
if [ -d "$TIKTOKEN_ORIGEM" ]; then
    TIKTOKEN_ORIGEM="$(cd "$TIKTOKEN_ORIGEM" && pwd -P)"
fi
cd "$RAIZ"

# Antes de criar qualquer coisa: a pasta temporária não pode ficar dentro do espelho de verdade.
BASE_TEMPORARIA="$(cd "${TMPDIR:-/tmp}" && pwd -P)"
case "$BASE_TEMPORARIA/" in
    "$ORIGEM"/*)
        echo "Recusado: a pasta temporária ($BASE_TEMPORARIA, de TMPDIR) fica dentro do espelho de verdade" \
             "($ORIGEM); os pesos sorteados iriam parar nele. Teste de fumaça não começou: aponte TMPDIR para" \
             "outra pasta." >&2
        exit 1 ;;
esac
TEMPORARIA="$(mktemp -d)"
trap 'rm -rf "$TEMPORARIA"' EXIT          # rm -rf apaga os links, nunca os arquivos para onde eles apontam
TEMPORARIA="$(cd "$TEMPORARIA" && pwd -P)"
mkdir "$TEMPORARIA/cache" "$TEMPORARIA/artefatos" "$TEMPORARIA/tiktoken"
if ! python3 ferramentas/pesos_gpt2_sinteticos.py "$TEMPORARIA/espelho" --espelho-de "$ORIGEM"; then
    echo "Teste de fumaça não começou: não consegui montar o espelho temporário em $TEMPORARIA (motivo acima)." \
         "Nada foi escrito no espelho de verdade ($ORIGEM)." >&2
    exit 1
fi
# O cache do tiktoken também é temporário (links para os arquivos): o que o tiktoken gravar fica aqui.
if [ -d "$TIKTOKEN_ORIGEM" ]; then
    for arquivo in "$TIKTOKEN_ORIGEM"/*; do
        if [ -f "$arquivo" ]; then
            ln -s "$(realpath "$arquivo")" "$TEMPORARIA/tiktoken/"
        fi
    done
fi

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
TIKTOKEN_CACHE_DIR="$TEMPORARIA/tiktoken" \
LLM_CACHE_DIR="$TEMPORARIA/cache" \
LLM_ARTEFATOS="$TEMPORARIA/artefatos" \
MPLBACKEND=Agg PYTHONUNBUFFERED=1 \
    python3 -m pytest --durations=0 "${alvos[@]}"
