#!/usr/bin/env python3
"""Executa notebooks do curso no lugar, de cima a baixo, cada um em um kernel novo.

Assim as saídas que vão para o repositório vêm sempre de uma execução limpa e completa.
O diretório de trabalho é a pasta do capítulo e o modo é `rapido` (a menos que LLM_MODO diga outro).

Antes de gravar, o notebook é limpo do que só atrapalha no git: tempos de execução por célula, estado de widgets,
e as barras de progresso ficam só com o último desenho de cada linha (o `\r` de um terminal aplicado ao texto).
Assim, executar de novo um notebook que não mudou muda só o que de fato mudou (tempos medidos, por exemplo).

Uso:
    python ferramentas/executar.py                 # todos os capítulos, em ordem
    python ferramentas/executar.py 00-oficina 05   # só os capítulos indicados (nome ou número)
    LLM_MODO=completo python ferramentas/executar.py 05-pretreino
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
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


def _aplicar_retornos(texto: str) -> str:
    """O que um terminal mostraria: em cada linha com `\r`, só o último desenho (uma barra apagada some)."""
    linhas = []
    for linha in texto.split("\n"):
        if "\r" in linha:
            linha = linha.rstrip("\r").rsplit("\r", 1)[-1].rstrip()
            if not linha:
                continue
        linhas.append(linha)
    return "\n".join(linhas)


def limpar(nb) -> None:
    """Tira do notebook o que varia sem motivo: tempos por célula, widgets; junta e resolve os fluxos de texto."""
    nb.metadata.pop("widgets", None)
    for celula in nb.cells:
        celula.metadata.pop("execution", None)
        if celula.cell_type != "code":
            continue
        saidas = []
        for saida in celula.outputs:
            if saida.output_type == "stream":
                anterior = saidas[-1] if saidas else None
                if anterior is not None and anterior.output_type == "stream" and anterior.name == saida.name:
                    anterior.text += saida.text
                    continue
            elif saida.output_type in ("display_data", "execute_result"):
                saida.data.pop("application/vnd.jupyter.widget-view+json", None)
                if not saida.data:
                    continue
            saidas.append(saida)
        for saida in saidas:
            if saida.output_type == "stream":
                saida.text = _aplicar_retornos(saida.text)
        celula.outputs = [s for s in saidas if s.output_type != "stream" or s.text]


def executar(capitulo: str, tempo_limite: int) -> float:
    """Executa o notebook do capítulo e grava as saídas no próprio arquivo. Devolve os segundos gastos."""
    caminho = RAIZ / capitulo / "notebook.ipynb"
    nb = nbformat.read(caminho, as_version=4)
    os.environ.setdefault("LLM_MODO", "rapido")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figuras gravadas nas saídas
    cliente = NotebookClient(nb, timeout=tempo_limite, kernel_name="python3", record_timing=False,
                             resources={"metadata": {"path": str(caminho.parent)}})
    inicio = time.perf_counter()
    try:
        cliente.execute()
    finally:
        limpar(nb)
        gravar(nb, caminho)
    return time.perf_counter() - inicio


def gravar(nb, caminho: Path) -> None:
    """Grava o notebook de forma atômica: um `.part` novo na mesma pasta, renomeado por cima no fim.

    Uma interrupção no meio da gravação (Ctrl-C, disco cheio) deixa o notebook antigo inteiro, nunca um JSON
    pela metade. O arquivo novo fica com as permissões do antigo.
    """
    descritor, nome = tempfile.mkstemp(prefix=caminho.name + ".", suffix=".part", dir=caminho.parent)
    try:
        with os.fdopen(descritor, "w", encoding="utf-8") as arquivo:
            nbformat.write(nb, arquivo)
        if caminho.exists():
            shutil.copymode(caminho, nome)
        else:
            os.chmod(nome, 0o644)
        os.replace(nome, caminho)
    finally:
        Path(nome).unlink(missing_ok=True)


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
