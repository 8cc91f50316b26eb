#!/usr/bin/env python3
"""Refaz capítulos depois de uma mudança: o comando único de quem mantém o curso.

Depois de editar um notebook, é preciso, nesta ordem: gerar o pacote, reexecutar o capítulo e todos os que usam o
código dele, reescrever os números dos textos, conferir os resultados novos contra os antigos e rodar as
conferências. Este script faz tudo isso:

1. `python ferramentas/exportar.py` (o pacote `llm_do_zero/` e os `capitulos_anteriores.py`);
2. guarda uma cópia de `artefatos/resultados/*.json` (os resultados de antes, para comparar);
3. `python ferramentas/executar.py <capítulo>` para cada capítulo do plano, em ordem, no modo `rapido`;
4. `python ferramentas/resultados.py` (a tabela do README e os números marcados nos textos) e
   `python ferramentas/estimar_tempos.py --escrever` (a tabela de tempos do README);
5. o guarda dos resultados, `python ferramentas/conferir_resultados.py artefatos/resultados --versionados
   <cópia> --capitulos <os do plano>`, e as conferências: `exportar.py --check`, `resultados.py --check`,
   `estimar_tempos.py --check` e, se existir ao lado do repositório, `../shared/verificar/verificar_curso.py`;
6. imprime o que mudou: capítulo a capítulo, cada métrica que se moveu, antes → depois.

O plano são os capítulos pedidos e todos os que dependem deles, calculados a partir do código: o capítulo N
depende do M quando o notebook de N importa (de `capitulos_anteriores` ou do pacote) um nome que M exporta, ou
quando importa de um capítulo K cujo módulo no pacote usa o código de M (os imports que `exportar.py` calcula).
Assim `refazer.py 05` refaz 05, 06, 07 e 08; `refazer.py 03` refaz também o 04, que usa a atenção do 03; e
`refazer.py 06` refaz só o 06 e o 08.

Uso:
    python ferramentas/refazer.py 05                 # 05 e os que dependem dele
    python ferramentas/refazer.py 02-tokens 06       # vários capítulos (nome ou número)
    python ferramentas/refazer.py --dry-run 03       # só mostra o plano e os comandos, sem rodar nada
    python ferramentas/refazer.py --sem-executar     # exporta, reescreve os números e confere, sem notebooks

Sai com 1 se algum passo falhar (um notebook que quebra interrompe o plano: os seguintes dependem dele). Os
notebooks rodam com LLM_MODO=rapido e gravam em `artefatos/` do repositório (LLM_ARTEFATOS e LLM_FUMACA são
ignorados). Rode com as variáveis de dados de sempre quando a máquina não tiver internet:
LLM_DADOS_ESPELHO=../shared/dados TIKTOKEN_CACHE_DIR=../shared/dados/tiktoken.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
from conferir_resultados import folhas  # noqa: E402
from exportar import CAPITULOS, MODULOS, coletar, dependencias, exportados_por_capitulo  # noqa: E402

PACOTE = "llm_do_zero"
VERIFICADOR = Path("..") / "shared" / "verificar" / "verificar_curso.py"     # relativo à raiz do repositório


# ---------------------------------------------------------------- dependências entre capítulos

def _codigo_das_celulas(notebook: Path) -> list[str]:
    """O código de cada célula, sem as linhas de comandos do IPython (`!pip …`, `%matplotlib …`)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    codigos = []
    for celula in nb.get("cells", []):
        if celula.get("cell_type") == "code":
            linhas = "".join(celula.get("source", [])).splitlines()
            codigos.append("\n".join(linha for linha in linhas if not linha.lstrip().startswith(("!", "%"))))
    return codigos


def nomes_importados_do_curso(notebook: Path) -> tuple[set[str], set[str]]:
    """(nomes importados de `capitulos_anteriores`, módulos do pacote importados com `*` ou inteiros)."""
    nomes, modulos = set(), set()
    for codigo in _codigo_das_celulas(notebook):
        try:
            arvore = ast.parse(codigo)
        except SyntaxError:
            continue
        for no in ast.walk(arvore):
            if isinstance(no, ast.ImportFrom) and no.module:
                do_pacote = no.module.split(".")[0] == PACOTE
                if no.module != "capitulos_anteriores" and not do_pacote:
                    continue
                for alias in no.names:
                    if alias.name == "*":
                        modulos.add(no.module.split(".", 1)[1] if do_pacote and "." in no.module else "*")
                    else:
                        nomes.add(alias.name)
            elif isinstance(no, ast.Import):
                modulos.update(a.name.split(".", 1)[1] for a in no.names
                               if a.name.startswith(PACOTE + "."))
    return nomes, modulos


def grafo_de_dependencias(raiz: Path | None = None) -> dict[str, set[str]]:
    """Capítulo -> capítulos anteriores de cujo código ele depende (direta ou indiretamente)."""
    raiz = raiz or RAIZ
    blocos = coletar(raiz)
    exportados = exportados_por_capitulo(blocos)
    capitulo_do_modulo = {modulo: cap for cap, modulo in MODULOS.items()}
    existentes = [c for c in CAPITULOS if (raiz / c / "notebook.ipynb").exists()]
    # O código exportado de cada capítulo usa o código destes (os imports que exportar.py escreve no módulo).
    do_modulo = {cap: {capitulo_do_modulo[m] for m in dependencias(cap, blocos)} for cap in CAPITULOS}
    grafo: dict[str, set[str]] = {}
    for cap in existentes:
        anteriores = CAPITULOS[:CAPITULOS.index(cap)]
        nomes, modulos = nomes_importados_do_curso(raiz / cap / "notebook.ipynb")
        diretos = {c for c in anteriores if nomes & set(exportados[c])}
        diretos |= set(anteriores) if "*" in modulos else {capitulo_do_modulo[m] for m in modulos
                                                           if m in capitulo_do_modulo}
        # Fecho: quem o capítulo usa traz consigo o que o módulo dele usa.
        todos, pendentes = set(), list(diretos)
        while pendentes:
            atual = pendentes.pop()
            if atual not in todos:
                todos.add(atual)
                pendentes.extend(do_modulo.get(atual, ()))
        grafo[cap] = todos
    return grafo


def escolher(pedidos: list[str], raiz: Path | None = None) -> list[str]:
    """Traduz '05' ou '05-pretreino' no nome da pasta; sem pedidos, nenhum capítulo."""
    raiz = raiz or RAIZ
    escolhidos = []
    for pedido in pedidos:
        limpo = pedido.strip().strip("/")
        achados = [c for c in CAPITULOS if c == limpo or c.startswith(limpo + "-")]
        if not achados or not (raiz / achados[0] / "notebook.ipynb").exists():
            raise SystemExit(f"Capítulo desconhecido: {pedido!r}. Opções: {', '.join(CAPITULOS)} "
                             f"(o nome da pasta ou só o número, como 05).")
        escolhidos.extend(achados)
    return escolhidos


def plano(pedidos: list[str], grafo: dict[str, set[str]]) -> list[str]:
    """Os capítulos pedidos e todos os que dependem de algum deles, na ordem do curso.

    O grafo já traz as dependências indiretas (o fecho pelos módulos do pacote), então basta olhar uma vez: um
    capítulo que só usa o módulo de K não entra quando muda um capítulo que o código de K não usa.
    """
    afetados = set(pedidos) | {cap for cap, usa in grafo.items() if usa & set(pedidos)}
    return [c for c in CAPITULOS if c in afetados]


# ---------------------------------------------------------------- o que mudou nos resultados

def _formatar(valor) -> str:
    if isinstance(valor, float):
        return f"{valor:.6g}"
    return repr(valor) if isinstance(valor, str) else str(valor)


def diferencas(antes: dict | None, depois: dict | None) -> list[str]:
    """Cada métrica que mudou entre dois registros de um capítulo (`chave: antes → depois`)."""
    if antes is None and depois is None:
        return []
    if antes is None:
        return ["resultado novo (não havia antes)"]
    if depois is None:
        return ["o resultado sumiu (a execução nova não gravou nada)"]
    velhas = dict(folhas(antes.get("metricas", {})))
    novas = dict(folhas(depois.get("metricas", {})))
    linhas = []
    if antes.get("tempo_s") != depois.get("tempo_s"):
        linhas.append(f"tempo_s: {_formatar(antes.get('tempo_s'))} → {_formatar(depois.get('tempo_s'))}")
    for chave in [*velhas, *(c for c in novas if c not in velhas)]:
        if chave not in novas:
            linhas.append(f"{chave}: {_formatar(velhas[chave])} → (sumiu)")
        elif chave not in velhas:
            linhas.append(f"{chave}: (nova) → {_formatar(novas[chave])}")
        elif velhas[chave] != novas[chave]:
            linhas.append(f"{chave}: {_formatar(velhas[chave])} → {_formatar(novas[chave])}")
    return linhas


def ler_pasta(pasta: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(pasta.glob("*.json"))}


def relatorio_de_mudancas(antes: dict[str, dict], depois: dict[str, dict], capitulos: list[str]) -> str:
    linhas = ["O que mudou nos resultados (antes → depois):"]
    for cap in capitulos:
        mudancas = diferencas(antes.get(cap), depois.get(cap))
        if not mudancas and cap not in antes and cap not in depois:
            linhas.append(f"  {cap}: não grava resultados")
        elif not mudancas:
            linhas.append(f"  {cap}: nada mudou")
        else:
            linhas.append(f"  {cap}: {len(mudancas)} mudança(s)")
            linhas.extend(f"    - {m}" for m in mudancas)
    return "\n".join(linhas)


# ---------------------------------------------------------------- os passos

def comandos(capitulos: list[str], versionados: str, executar: bool,
             raiz: Path | None = None) -> list[tuple[str, list]]:
    """(descrição, argv) de cada passo, na ordem; `versionados` é a pasta da cópia dos resultados de antes."""
    raiz = raiz or RAIZ
    python = sys.executable
    passos = [("exportar o pacote", [python, "ferramentas/exportar.py"])]
    if executar:
        passos += [(f"executar {cap}", [python, "ferramentas/executar.py", cap]) for cap in capitulos]
    passos.append(("reescrever a tabela e os números marcados", [python, "ferramentas/resultados.py"]))
    passos.append(("reescrever a tabela de tempos", [python, "ferramentas/estimar_tempos.py", "--escrever"]))
    com_resultados = [cap for cap in capitulos if (raiz / "artefatos" / "resultados" / f"{cap}.json").exists()]
    if executar and com_resultados:
        passos.append(("guarda dos resultados", [python, "ferramentas/conferir_resultados.py", "artefatos/resultados",
                                                 "--versionados", versionados, "--capitulos", *com_resultados]))
    passos += [("conferir o pacote gerado", [python, "ferramentas/exportar.py", "--check"]),
               ("conferir os números dos textos", [python, "ferramentas/resultados.py", "--check"]),
               ("conferir a tabela de tempos", [python, "ferramentas/estimar_tempos.py", "--check"])]
    if (raiz / VERIFICADOR).is_file():
        passos.append(("conferir as convenções do curso", [python, str(VERIFICADOR)]))
    return passos


def ambiente() -> dict[str, str]:
    """O ambiente dos passos: modo rápido, resultados em `artefatos/` do repositório, sem fumaça."""
    env = {k: v for k, v in os.environ.items() if k not in ("LLM_ARTEFATOS", "LLM_FUMACA")}
    env.update({"LLM_MODO": "rapido", "PYTHONUNBUFFERED": "1"})
    return env


def mostrar(argv: list) -> str:
    return shlex.join([Path(a).name if a == sys.executable else str(a) for a in argv])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capitulos", nargs="*", help="capítulos mudados (nome ou número, como 05)")
    parser.add_argument("--dry-run", action="store_true", help="só mostra o plano e os comandos, sem rodar nada")
    parser.add_argument("--sem-executar", action="store_true",
                        help="não executa notebooks: exporta, reescreve os números e confere")
    args = parser.parse_args(argv)
    if not args.capitulos and not args.sem_executar:
        parser.error("diga quais capítulos mudaram (ex.: `refazer.py 05`), ou use --sem-executar")

    pedidos = escolher(args.capitulos)
    capitulos = plano(pedidos, grafo_de_dependencias()) if pedidos else []
    print("Plano: " + (", ".join(capitulos) if capitulos else "nenhum notebook a executar"))
    extras = [c for c in capitulos if c not in pedidos]
    if extras:
        print(f"  (pedidos: {', '.join(pedidos)}; os outros usam o código deles: {', '.join(extras)})")
    resultados = RAIZ / "artefatos" / "resultados"

    if args.dry_run:
        passos = comandos(capitulos, "<cópia dos resultados de antes>", not args.sem_executar)
        print("Comandos, na ordem (LLM_MODO=rapido; nada foi executado):")
        for i, (descricao, argv_passo) in enumerate(passos, 1):
            print(f"  {i}. {descricao}: {mostrar(argv_passo)}")
        return 0

    with tempfile.TemporaryDirectory(prefix="refazer-antes-") as copia:
        for arquivo in resultados.glob("*.json"):
            shutil.copy2(arquivo, Path(copia) / arquivo.name)
        antes = ler_pasta(Path(copia))
        falhas = []
        for descricao, argv_passo in comandos(capitulos, copia, not args.sem_executar):
            print(f"\n== {descricao}: {mostrar(argv_passo)}", flush=True)
            inicio = time.perf_counter()
            codigo = subprocess.run(argv_passo, cwd=RAIZ, env=ambiente()).returncode
            print(f"   ({time.perf_counter() - inicio:.1f} s, código {codigo})", flush=True)
            if codigo != 0:
                falhas.append(descricao)
                if descricao.startswith(("executar", "exportar o pacote")):
                    print(f"\n'{descricao}' falhou: os passos seguintes dependem dele, então paro aqui.")
                    break
        depois = ler_pasta(resultados)
    print("\n" + relatorio_de_mudancas(antes, depois, capitulos or sorted(set(antes) | set(depois))))
    if falhas:
        print("\nFalharam: " + "; ".join(falhas) + ". Veja as mensagens acima.")
        return 1
    print("\nTudo refeito e conferido. Revise o `git diff` (notebooks, resultados, textos) antes de versionar.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
