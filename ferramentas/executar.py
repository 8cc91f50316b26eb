#!/usr/bin/env python3
"""Executa notebooks do curso no lugar, de cima a baixo, cada um em um kernel novo.

Assim as saídas que vão para o repositório vêm sempre de uma execução limpa e completa.
O diretório de trabalho é a pasta do capítulo e o modo é `rapido` (a menos que LLM_MODO diga outro).

Uso:
    python ferramentas/executar.py                 # todos os capítulos, em ordem
    python ferramentas/executar.py 00-oficina 05   # só os capítulos indicados (nome ou número)
    LLM_MODO=completo python ferramentas/executar.py 05-pretreino
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
from exportar import CAPITULOS  # noqa: E402


def escolher(pedidos: list[str]) -> list[str]:
    """Traduz '05' ou '05-pretreino' no nome da pasta; sem pedidos, todos os capítulos."""
    if not pedidos:
        return [c for c in CAPITULOS if (RAIZ / c / "notebook.ipynb").exists()]
    escolhidos = []
    for p in pedidos:
        achados = [c for c in CAPITULOS if c == p.strip("/") or c.startswith(p.strip("/") + "-")]
        if not achados:
            raise SystemExit(f"Capítulo desconhecido: {p!r}. Opções: {', '.join(CAPITULOS)}")
        escolhidos.extend(achados)
    return escolhidos


def executar(capitulo: str, tempo_limite: int) -> float:
    """Executa o notebook do capítulo e grava as saídas no próprio arquivo. Devolve os segundos gastos."""
    caminho = RAIZ / capitulo / "notebook.ipynb"
    nb = nbformat.read(caminho, as_version=4)
    os.environ.setdefault("LLM_MODO", "rapido")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figuras gravadas nas saídas
    cliente = NotebookClient(nb, timeout=tempo_limite, kernel_name="python3",
                             resources={"metadata": {"path": str(caminho.parent)}})
    inicio = time.perf_counter()
    try:
        cliente.execute()
    finally:
        nbformat.write(nb, caminho)
    return time.perf_counter() - inicio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capitulos", nargs="*", help="capítulos a executar (padrão: todos)")
    parser.add_argument("--tempo-limite", type=int, default=1800, help="segundos por célula (padrão 1800)")
    args = parser.parse_args()
    for cap in escolher(args.capitulos):
        print(f"executando {cap} (modo {os.environ.get('LLM_MODO', 'rapido')})...", flush=True)
        try:
            segundos = executar(cap, args.tempo_limite)
        except CellExecutionError as erro:
            print(f"  ERRO em {cap}: uma célula falhou (as saídas até ali foram gravadas).\n{erro}")
            return 1
        print(f"  {cap}: {segundos:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
