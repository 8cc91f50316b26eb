#!/usr/bin/env python3
"""Confere os resultados de uma execução com os versionados: o guarda do que os modelos aprendem.

Cada capítulo que grava resultados declara, ao lado das suas configurações, um dicionário `<NOME>_CHECKS`
(exportado para o pacote `llm_do_zero`):

    {"capitulo": "05-pretreino",
     "padrao": 0,                                   # tolerância das métricas não citadas: 0 = igual
     "tolerancias": {"val_bits_por_caractere": 0.03,          # |nova - versionada| <= 0,03
                     "segundos": None},                       # None: não se compara (tempos de relógio)
     "conclusoes": {"o GPT vence a tabela de bigramas": "val_bits_por_caractere < bigrama_bits_por_caractere"}}

Uma chave de `tolerancias` vale para ela e para tudo o que estiver dentro dela (listas e dicionários), e a mais
longa que casar ganha. Uma tolerância é um número (absoluta) ou um par (absoluta, relativa): passa se
|nova - versionada| <= absoluta + relativa x |versionada|. Textos e booleanos têm de ser iguais. As conclusões são
expressões sobre as métricas do capítulo (as chaves do topo viram nomes; `m("a.b.0")` entra em listas e
dicionários) e têm de valer na execução nova — são as frases que os textos do curso tiram dos números.

Uso:
    python ferramentas/conferir_resultados.py PASTA            # PASTA/*.json contra artefatos/resultados/
    python ferramentas/conferir_resultados.py PASTA --versionados OUTRA

Sai com 1 e diz cada métrica e cada conclusão que mudou, com os dois valores; capítulos sem declaração ou sem
resultado na PASTA também falham.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path

RAIZ = Path(__file__).resolve().parent.parent
MODULOS = ("oficina", "estatistica", "tokens", "atencao", "gpt", "pretreino", "finetuning", "instrucoes", "extras")


def declaracoes() -> dict[str, dict]:
    """Capítulo -> a declaração `*_CHECKS` que o notebook dele exporta."""
    sys.path.insert(0, str(RAIZ))
    achadas = {}
    for nome in MODULOS:
        try:
            modulo = importlib.import_module(f"llm_do_zero.{nome}")
        except ModuleNotFoundError:
            continue
        for chave, valor in vars(modulo).items():
            if chave.endswith("_CHECKS") and isinstance(valor, dict) and "capitulo" in valor:
                achadas[valor["capitulo"]] = valor
    return achadas


def folhas(valor, caminho: str = ""):
    """(caminho com pontos, valor) de cada número, texto ou booleano dentro de dicionários e listas."""
    if isinstance(valor, dict):
        for chave, filho in valor.items():
            yield from folhas(filho, f"{caminho}.{chave}" if caminho else str(chave))
    elif isinstance(valor, list):
        for i, filho in enumerate(valor):
            yield from folhas(filho, f"{caminho}.{i}" if caminho else str(i))
    else:
        yield caminho, valor


def tolerancia(caminho: str, declaracao: dict):
    """A tolerância da chave mais longa de `tolerancias` que é o caminho ou um prefixo dele (senão, `padrao`)."""
    casadas = [chave for chave in declaracao.get("tolerancias", {})
               if caminho == chave or caminho.startswith(chave + ".")]
    if not casadas:
        return declaracao.get("padrao", 0)
    return declaracao["tolerancias"][max(casadas, key=len)]


def dentro(novo, versionado, tol) -> bool:
    if isinstance(versionado, bool) or not isinstance(versionado, (int, float)):
        return novo == versionado
    if isinstance(novo, bool) or not isinstance(novo, (int, float)):
        return False
    if isinstance(versionado, float) and math.isnan(versionado):
        return isinstance(novo, float) and math.isnan(novo)
    absoluta, relativa = tol if isinstance(tol, (tuple, list)) else (tol, 0.0)
    return abs(novo - versionado) <= absoluta + relativa * abs(versionado) + 1e-12


def pegar(metricas: dict, caminho: str):
    valor = metricas
    for parte in caminho.split("."):
        valor = valor[int(parte)] if isinstance(valor, list) else valor[parte]
    return valor


def avaliar_conclusao(expressao: str, metricas: dict):
    nomes = {chave: valor for chave, valor in metricas.items() if chave.isidentifier()}
    nomes.update(m=lambda caminho: pegar(metricas, caminho), abs=abs, min=min, max=max, len=len)
    return eval(expressao, {"__builtins__": {}}, nomes)      # expressões escritas pelo curso, não pelo usuário


def conferir_capitulo(novas: dict, versionadas: dict, declaracao: dict) -> list[str]:
    """As diferenças de um capítulo, uma frase por métrica ou conclusão; vazia se tudo confere."""
    problemas = []
    novas_folhas = dict(folhas(novas))
    for caminho, antigo in folhas(versionadas):
        tol = tolerancia(caminho, declaracao)
        if tol is None:
            continue
        if caminho not in novas_folhas:
            problemas.append(f"falta a métrica {caminho} (versionada: {antigo!r})")
        elif not dentro(novas_folhas[caminho], antigo, tol):
            problemas.append(f"{caminho}: {novas_folhas[caminho]!r} na execução nova x {antigo!r} versionada "
                             f"(tolerância {tol})")
    for frase, expressao in declaracao.get("conclusoes", {}).items():
        try:
            vale = bool(avaliar_conclusao(expressao, novas))
        except (KeyError, IndexError, TypeError, NameError) as erro:
            problemas.append(f"conclusão '{frase}' não pôde ser conferida ({type(erro).__name__}: {erro})")
            continue
        if not vale:
            antes = avaliar_conclusao(expressao, versionadas)
            problemas.append(f"conclusão '{frase}' ({expressao}) não vale mais (na versionada: {antes})")
    return problemas


def conferir(pasta: Path, versionados: Path, capitulos=None) -> dict[str, list[str]]:
    """Capítulo -> problemas, para cada resultado versionado (ou só os `capitulos` pedidos)."""
    todas = declaracoes()
    relatorio = {}
    for arquivo in sorted(versionados.glob("*.json")):
        capitulo = arquivo.stem
        if capitulos and capitulo not in capitulos:
            continue
        versionado = json.loads(arquivo.read_text(encoding="utf-8"))
        if capitulo not in todas:
            relatorio[capitulo] = ["o capítulo não declara tolerâncias (um dicionário *_CHECKS ao lado das "
                                   "configurações do notebook)"]
            continue
        novo_arquivo = pasta / arquivo.name
        if not novo_arquivo.is_file():
            relatorio[capitulo] = [f"a execução nova não gravou {novo_arquivo}"]
            continue
        novo = json.loads(novo_arquivo.read_text(encoding="utf-8"))
        problemas = conferir_capitulo(novo["metricas"], versionado["metricas"], todas[capitulo])
        if novo.get("modo") != versionado.get("modo"):
            problemas.insert(0, f"modo {novo.get('modo')!r} na execução nova x {versionado.get('modo')!r}")
        relatorio[capitulo] = problemas
    return relatorio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pasta", type=Path, help="pasta com os <capítulo>.json da execução nova")
    parser.add_argument("--versionados", type=Path, default=RAIZ / "artefatos" / "resultados",
                        help="pasta dos resultados de referência (padrão: artefatos/resultados/)")
    parser.add_argument("--capitulos", nargs="*", help="só estes capítulos (padrão: todos os versionados)")
    args = parser.parse_args()
    relatorio = conferir(args.pasta, args.versionados, args.capitulos)
    falhas = 0
    for capitulo, problemas in relatorio.items():
        if problemas:
            falhas += len(problemas)
            print(f"{capitulo}: {len(problemas)} diferença(s)")
            for problema in problemas:
                print(f"  - {problema}")
        else:
            print(f"{capitulo}: confere")
    if falhas:
        print(f"\n{falhas} diferença(s) fora da tolerância: um modelo aprendeu outra coisa, ou um texto ficou "
              f"desatualizado. Se a mudança é de propósito, refaça os capítulos e versione os resultados novos.")
        return 1
    print(f"\n{len(relatorio)} capítulo(s) conferido(s): tudo dentro das tolerâncias.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
