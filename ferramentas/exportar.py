#!/usr/bin/env python3
"""Gera `capitulos_anteriores.py` em cada capítulo (01 em diante) e `tests/curso.py`.

Cada célula de código de um notebook que começa com a linha `# exportar` é uma definição que os
capítulos seguintes reutilizam. Este script junta essas células, na ordem dos capítulos, e escreve:

- `NN-capitulo/capitulos_anteriores.py`: tudo o que os capítulos anteriores a NN exportaram;
- `tests/curso.py`: tudo o que o curso exporta (os testes importam daqui).

As linhas de import de nível superior das células são reunidas no topo do arquivo, sem repetição.

Uso:
    python ferramentas/exportar.py           # reescreve os arquivos
    python ferramentas/exportar.py --check   # só confere; sai com código 1 se algo estiver desatualizado
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

RAIZ = Path(__file__).resolve().parent.parent
CAPITULOS = ["00-oficina", "01-estatistica", "02-tokens", "03-atencao", "04-gpt",
             "05-pretreino", "06-finetuning", "07-instrucoes", "08-extras"]
MARCA = "# exportar"
ARQUIVO_CAPITULO = "capitulos_anteriores.py"
ARQUIVO_TESTES = Path("tests") / "curso.py"


def celulas_exportadas(notebook: Path) -> list[str]:
    """Devolve o código das células `# exportar` de um notebook, sem a linha da marca."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    blocos = []
    for celula in nb.get("cells", []):
        if celula.get("cell_type") != "code":
            continue
        fonte = "".join(celula.get("source", []))
        linhas = fonte.splitlines()
        if linhas and linhas[0].strip() == MARCA:
            blocos.append("\n".join(linhas[1:]).strip("\n"))
    return blocos


def separar_imports(codigo: str) -> tuple[list[str], str]:
    """Separa os imports de nível superior (que vão para o topo do arquivo) do resto do código."""
    arvore = ast.parse(codigo)
    linhas = codigo.splitlines()
    imports, remover = [], set()
    for no in arvore.body:
        if isinstance(no, (ast.Import, ast.ImportFrom)):
            trecho = linhas[no.lineno - 1:no.end_lineno]
            remover.update(range(no.lineno - 1, no.end_lineno))
            if isinstance(no, ast.ImportFrom) and no.module == "capitulos_anteriores":
                continue
            imports.append("\n".join(trecho))
    resto = "\n".join(l for i, l in enumerate(linhas) if i not in remover).strip("\n")
    return imports, resto


def nomes_definidos(codigo: str) -> list[str]:
    """Nomes que um bloco define no nível superior (funções, classes, atribuições)."""
    nomes = []
    for no in ast.parse(codigo).body:
        if isinstance(no, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            nomes.append(no.name)
        elif isinstance(no, (ast.Assign, ast.AnnAssign)):
            alvos = no.targets if isinstance(no, ast.Assign) else [no.target]
            for alvo in alvos:
                for sub in ast.walk(alvo):
                    if isinstance(sub, ast.Name):
                        nomes.append(sub.id)
    return nomes


def coletar(raiz: Path = RAIZ) -> dict[str, list[str]]:
    """Capítulo -> lista de blocos exportados (capítulos sem notebook ficam com lista vazia)."""
    resultado = {}
    for cap in CAPITULOS:
        nb = raiz / cap / "notebook.ipynb"
        resultado[cap] = celulas_exportadas(nb) if nb.exists() else []
    return resultado


def nomes_repetidos(blocos_por_capitulo: dict[str, list[str]]) -> list[str]:
    """Nomes exportados mais de uma vez, com os capítulos onde aparecem."""
    onde: dict[str, list[str]] = {}
    for cap, blocos in blocos_por_capitulo.items():
        for bloco in blocos:
            for nome in nomes_definidos(bloco):
                onde.setdefault(nome, []).append(cap)
    return [f"{nome}: {', '.join(caps)}" for nome, caps in onde.items() if len(caps) > 1]


def montar_modulo(blocos_por_capitulo: dict[str, list[str]], capitulos: list[str], titulo: str) -> str:
    """Texto de um módulo com os blocos dos capítulos pedidos."""
    imports: list[str] = []
    corpo: list[str] = []
    for cap in capitulos:
        blocos = blocos_por_capitulo.get(cap, [])
        if not blocos:
            continue
        corpo.append(f"\n\n# {'=' * 70}\n# Capítulo {cap}\n# {'=' * 70}\n")
        for bloco in blocos:
            imps, resto = separar_imports(bloco)
            for imp in imps:
                if imp not in imports:
                    imports.append(imp)
            if resto:
                corpo.append("\n" + resto + "\n")
    cabecalho = (
        f'"""{titulo}\n\n'
        "ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar`\n"
        "dos notebooks. Não edite à mão: mude o notebook do capítulo e gere de novo.\n"
        '"""\n'
    )
    texto = cabecalho + "\n".join(imports) + "\n" + "".join(corpo)
    return texto.rstrip("\n") + "\n"


def arquivos_esperados(raiz: Path = RAIZ) -> dict[Path, str]:
    """Caminho -> conteúdo que cada arquivo gerado deve ter."""
    blocos = coletar(raiz)
    esperados = {}
    for i, cap in enumerate(CAPITULOS[1:], start=1):
        if not (raiz / cap).is_dir():
            continue
        anteriores = CAPITULOS[:i]
        titulo = f"Código exportado pelos capítulos anteriores a {cap} ({anteriores[0]} a {anteriores[-1]})."
        esperados[raiz / cap / ARQUIVO_CAPITULO] = montar_modulo(blocos, anteriores, titulo)
    esperados[raiz / ARQUIVO_TESTES] = montar_modulo(
        blocos, CAPITULOS, "Todo o código exportado pelo curso (capítulos 00 a 08), para os testes.")
    return esperados


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="só confere se os arquivos estão em dia")
    args = parser.parse_args()

    repetidos = nomes_repetidos(coletar())
    if repetidos:
        print("Nomes exportados mais de uma vez (cada definição vive em um só capítulo):")
        for r in repetidos:
            print("  -", r)
        return 1

    desatualizados = []
    for caminho, conteudo in arquivos_esperados().items():
        atual = caminho.read_text(encoding="utf-8") if caminho.exists() else None
        if atual == conteudo:
            continue
        if args.check:
            desatualizados.append(caminho.relative_to(RAIZ).as_posix())
        else:
            caminho.write_text(conteudo, encoding="utf-8")
            print(f"escrito: {caminho.relative_to(RAIZ).as_posix()}")
    if desatualizados:
        print("Arquivos gerados desatualizados (rode `python ferramentas/exportar.py`):")
        for d in desatualizados:
            print("  -", d)
        return 1
    if args.check:
        print("Exportações em dia.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
