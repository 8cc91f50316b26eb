#!/usr/bin/env python3
"""Imprime a tabela de resultados (Markdown) a partir de `artefatos/resultados/*.json`.

Uso: python ferramentas/resultados.py   (depois de executar os notebooks; cole a tabela no README)
"""
import json
import sys
from pathlib import Path

RAIZ = Path(__file__).resolve().parent.parent


def formatar(valor) -> str:
    if isinstance(valor, float):
        return f"{valor:.4g}"
    if isinstance(valor, dict):
        return "; ".join(f"{k} {formatar(v)}" for k, v in valor.items())
    return str(valor)


def main() -> int:
    arquivos = sorted((RAIZ / "artefatos" / "resultados").glob("*.json"))
    if not arquivos:
        print("Nenhum resultado em artefatos/resultados/: execute os notebooks antes.")
        return 1
    print("| capítulo | modo | máquina | tempo (s) | métricas |")
    print("|---|---|---|---|---|")
    for arquivo in arquivos:
        r = json.loads(arquivo.read_text(encoding="utf-8"))
        metricas = ", ".join(f"`{k}` {formatar(v)}" for k, v in r["metricas"].items()
                             if not isinstance(v, (dict, list)))
        print(f"| {r['capitulo']} | {r['modo']} | {r['dispositivo']} | {r['tempo_s']} | {metricas} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
