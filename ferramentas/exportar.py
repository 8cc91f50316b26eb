#!/usr/bin/env python3
"""Gera o pacote `llm_do_zero/` e o `capitulos_anteriores.py` de cada capítulo a partir das células `# exportar`.

Cada célula de código de um notebook que começa com a linha `# exportar` é uma definição que os capítulos
seguintes reutilizam. Este script escreve:

- `llm_do_zero/<modulo>.py`: um módulo por capítulo (oficina, estatistica, tokens, …), só com as células
  exportadas daquele capítulo, cada bloco precedido de `# %% <capitulo>/notebook.ipynb · célula N` (N conta as
  células do notebook a partir de 1, markdown incluído);
- `llm_do_zero/__init__.py`: a versão (lida do pyproject.toml) e uma descrição; não reexporta nada;
- `NN-capitulo/capitulos_anteriores.py` (01 em diante): os imports explícitos, módulo a módulo, de tudo o que os
  capítulos anteriores exportaram — o índice do que o capítulo herda;
- `llm_do_zero/dados/`: cópias dos dados que o pacote lê ao rodar (DADOS_DO_PACOTE), para que ele funcione
  também instalado com `pip install .`, longe do repositório.

Os imports entre módulos são calculados: os nomes livres de cada célula (usados sem serem definidos nela nem no
próprio capítulo) são procurados nos capítulos anteriores. Um nome que nenhuma célula `# exportar` anterior define
é erro de geração. Todo arquivo gerado é compilado antes de ser escrito.

Uso:
    python ferramentas/exportar.py           # reescreve os arquivos (e apaga os gerados que sobraram)
    python ferramentas/exportar.py --check   # só confere; sai com código 1 se algo estiver desatualizado
"""
from __future__ import annotations

import argparse
import ast
import builtins
import json
import re
import symtable
import sys
from dataclasses import dataclass, field
from pathlib import Path

RAIZ = Path(__file__).resolve().parent.parent
CAPITULOS = ["00-oficina", "01-estatistica", "02-tokens", "03-atencao", "04-gpt",
             "05-pretreino", "06-finetuning", "07-instrucoes", "08-extras"]
PACOTE = "llm_do_zero"
MODULOS = {cap: cap.split("-", 1)[1] for cap in CAPITULOS}          # "05-pretreino" -> "pretreino"
MARCA = "# exportar"
ARQUIVO_CAPITULO = "capitulos_anteriores.py"
ASSINATURA = "ARQUIVO GERADO por `python ferramentas/exportar.py`"
LARGURA = 110
PASTAS_IGNORADAS = {".git", "dados-cache", "artefatos", "__pycache__", ".venv", "venv", ".ipynb_checkpoints"}
# Dados que o pacote lê ao rodar e que precisam ir junto quando ele é instalado com `pip install .`: cada um é
# copiado, igual, para dentro do pacote (origem no repositório -> destino dentro de llm_do_zero/).
DADOS_DO_PACOTE = {"07-instrucoes/dados/instrucoes.json": "dados/instrucoes.json"}


class ErroDeExportacao(Exception):
    """Um problema nas células `# exportar` que impede gerar o pacote (a mensagem diz onde)."""


@dataclass
class Bloco:
    """Uma célula `# exportar`: de onde veio, seus imports externos e o resto do código."""
    capitulo: str
    celula: int                       # posição no notebook, contando do 1
    codigo: str                       # sem a linha da marca
    imports: list[ast.stmt] = field(default_factory=list)
    corpo: str = ""

    @property
    def origem(self) -> str:
        return f"{self.capitulo}/notebook.ipynb · célula {self.celula}"


# ---------------------------------------------------------------- leitura dos notebooks

def celulas_exportadas(notebook: Path, capitulo: str) -> list[Bloco]:
    """As células `# exportar` de um notebook, na ordem, sem a linha da marca."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    blocos = []
    for i, celula in enumerate(nb.get("cells", []), start=1):
        if celula.get("cell_type") != "code":
            continue
        linhas = "".join(celula.get("source", [])).splitlines()
        if linhas and linhas[0].strip() == MARCA:
            blocos.append(Bloco(capitulo, i, "\n".join(linhas[1:]).strip("\n")))
    return blocos


def coletar(raiz: Path = RAIZ) -> dict[str, list[Bloco]]:
    """Capítulo -> blocos exportados (capítulo sem notebook fica com lista vazia), já separados em imports e corpo."""
    resultado = {}
    for cap in CAPITULOS:
        nb = raiz / cap / "notebook.ipynb"
        blocos = celulas_exportadas(nb, cap) if nb.exists() else []
        for bloco in blocos:
            separar_imports(bloco)
        resultado[cap] = blocos
    return resultado


def _eh_import_do_curso(no: ast.stmt) -> bool:
    return isinstance(no, ast.ImportFrom) and bool(no.module) and (
        no.module == "capitulos_anteriores" or no.module.split(".")[0] == PACOTE)


def separar_imports(bloco: Bloco) -> None:
    """Tira os imports de nível superior do bloco: os externos vão para o topo do módulo; os do curso são refeitos."""
    try:
        arvore = ast.parse(bloco.codigo)
    except SyntaxError as erro:
        raise ErroDeExportacao(f"{bloco.origem}: erro de sintaxe na linha {erro.lineno}: {erro.msg}") from erro
    linhas = bloco.codigo.splitlines()
    remover: set[int] = set()
    for no in arvore.body:
        if isinstance(no, (ast.Import, ast.ImportFrom)):
            remover.update(range(no.lineno - 1, no.end_lineno))
            if not _eh_import_do_curso(no):
                bloco.imports.append(no)
    corpo = [linha for i, linha in enumerate(linhas) if i not in remover]
    bloco.corpo = re.sub(r"\n{3,}", "\n\n\n", "\n".join(corpo)).strip("\n")


# ---------------------------------------------------------------- nomes definidos e nomes livres

def nomes_definidos(codigo: str) -> list[str]:
    """Nomes que um trecho define no nível superior (funções, classes, atribuições), sem contar imports."""
    nomes = []
    for no in ast.parse(codigo).body:
        if isinstance(no, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            nomes.append(no.name)
        elif isinstance(no, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            alvos = no.targets if isinstance(no, ast.Assign) else [no.target]
            for alvo in alvos:
                nomes.extend(sub.id for sub in ast.walk(alvo) if isinstance(sub, ast.Name))
    return nomes


def nomes_importados(nos: list[ast.stmt]) -> set[str]:
    nomes = set()
    for no in nos:
        for alias in no.names:
            nomes.add(alias.asname or alias.name.split(".")[0])
    return nomes


def nomes_livres(codigo: str) -> set[str]:
    """Nomes globais que o código usa (no nível superior ou dentro de funções e classes), com a tabela de símbolos."""
    tabela = symtable.symtable(codigo, "<célula>", "exec")
    livres = {s.get_name() for s in tabela.get_symbols()
              if s.is_referenced() and not (s.is_assigned() or s.is_imported())}
    pendentes = list(tabela.get_children())
    while pendentes:
        escopo = pendentes.pop()
        pendentes.extend(escopo.get_children())
        livres.update(s.get_name() for s in escopo.get_symbols() if s.is_referenced() and s.is_global())
    return livres - set(dir(builtins))


def exportados_por_capitulo(blocos: dict[str, list[Bloco]]) -> dict[str, list[str]]:
    """Capítulo -> nomes que ele exporta, na ordem em que aparecem."""
    return {cap: [n for b in bs for n in dict.fromkeys(nomes_definidos(b.corpo))] for cap, bs in blocos.items()}


def nomes_repetidos(blocos: dict[str, list[Bloco]]) -> list[str]:
    """Nomes exportados mais de uma vez, com os lugares onde aparecem."""
    onde: dict[str, list[str]] = {}
    for bs in blocos.values():
        for bloco in bs:
            for nome in dict.fromkeys(nomes_definidos(bloco.corpo)):
                onde.setdefault(nome, []).append(bloco.origem)
    return [f"{nome}: {'; '.join(lugares)}" for nome, lugares in onde.items() if len(lugares) > 1]


def dependencias(capitulo: str, blocos: dict[str, list[Bloco]]) -> dict[str, list[str]]:
    """Módulo anterior -> nomes que as células do capítulo usam dele. Nome sem dono anterior é erro."""
    exportados = exportados_por_capitulo(blocos)
    dono = {}
    for cap in CAPITULOS[:CAPITULOS.index(capitulo)]:
        for nome in exportados[cap]:
            dono[nome] = cap
    proprios = set(exportados[capitulo])
    for bloco in blocos[capitulo]:
        proprios |= nomes_importados(bloco.imports)
    usados: dict[str, set[str]] = {}
    for bloco in blocos[capitulo]:
        for nome in sorted(nomes_livres(bloco.corpo) - proprios):
            if nome not in dono:
                depois = [c for c in CAPITULOS[CAPITULOS.index(capitulo) + 1:] if nome in exportados[c]]
                onde = (f"ele só é exportado por {depois[0]}, que vem depois" if depois else
                        "nenhuma célula `# exportar` de um capítulo anterior (nem deste) o define — "
                        "talvez ele venha de uma célula comum do notebook")
                raise ErroDeExportacao(f"{bloco.origem}: a célula usa o nome {nome!r}, mas {onde}.")
            usados.setdefault(dono[nome], set()).add(nome)
    return {MODULOS[cap]: sorted(usados[cap], key=_ordem_nome) for cap in CAPITULOS if cap in usados}


# ---------------------------------------------------------------- escrita

def _ordem_nome(nome: str) -> tuple:
    return (nome.lstrip("_").lower(), nome)


def linha_from(modulo: str, nomes: list[str], sufixo: str = "") -> str:
    """`from modulo import a, b, c`, quebrada entre parênteses se passar da largura."""
    simples = f"from {modulo} import {', '.join(nomes)}{sufixo}"
    if len(simples) <= LARGURA:
        return simples
    linhas, atual = [], ""
    recuo = " " * 4
    for nome in nomes:
        candidato = f"{atual} {nome}," if atual else f"{recuo}{nome},"
        if len(candidato) > LARGURA and atual:
            linhas.append(atual)
            candidato = f"{recuo}{nome},"
        atual = candidato
    linhas.append(atual)
    return f"from {modulo} import ({sufixo}\n" + "\n".join(linhas) + "\n)"


def imports_externos(nos: list[ast.stmt]) -> list[str]:
    """Junta os imports externos das células: sem repetição, biblioteca padrão antes das outras, em ordem alfabética."""
    simples: set[str] = set()
    de: dict[str, set[str]] = {}
    for no in nos:
        if isinstance(no, ast.Import):
            simples.update(ast.unparse(ast.Import(names=[a])) for a in no.names)
        else:
            modulo = "." * no.level + (no.module or "")
            de.setdefault(modulo, set()).update(f"{a.name} as {a.asname}" if a.asname else a.name for a in no.names)
    padrao = set(sys.stdlib_module_names) | {"__future__"}
    linhas = [(linha.split()[1].split(".")[0], 0, linha) for linha in simples]
    linhas += [(m.split(".")[0], 1, linha_from(m, sorted(n, key=_ordem_nome))) for m, n in de.items()]
    def ordem(x):
        return (x[0] != "__future__", x[2].split()[1], x[1])

    grupos = [sorted((x for x in linhas if x[0] in padrao), key=ordem),
              sorted((x for x in linhas if x[0] not in padrao), key=ordem)]
    return ["\n".join(x[2] for x in g) for g in grupos if g]


def compilar(texto: str, caminho: Path) -> str:
    """Compila o texto gerado; erro de sintaxe é erro de geração, nunca um arquivo quebrado escrito."""
    try:
        compile(texto, str(caminho), "exec")
    except SyntaxError as erro:
        raise ErroDeExportacao(f"o arquivo gerado {caminho.name} não compila "
                               f"(linha {erro.lineno}: {erro.msg})") from erro
    return texto


def montar_modulo(capitulo: str, blocos: dict[str, list[Bloco]]) -> str:
    """Texto de `llm_do_zero/<modulo>.py`: cabeçalho, imports externos, imports do curso, blocos com marcadores."""
    nos = [no for b in blocos[capitulo] for no in b.imports]
    grupos = imports_externos(nos)
    internos = [linha_from(f"{PACOTE}.{mod}", nomes) for mod, nomes in dependencias(capitulo, blocos).items()]
    if internos:
        grupos.append("\n".join(internos))
    cabecalho = (f'"""Capítulo {capitulo}: o código que o capítulo ensina e os seguintes reutilizam.\n\n'
                 f"{ASSINATURA} a partir das células `# exportar` de\n"
                 f"`{capitulo}/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.\n"
                 '"""\n')
    corpo = [f"# %% {b.origem}\n{b.corpo}\n" for b in blocos[capitulo] if b.corpo]
    return cabecalho + "\n\n".join(grupos) + "\n\n\n" + "\n\n".join(corpo)


def versao(raiz: Path) -> str:
    achado = re.search(r'^version\s*=\s*"([^"]+)"', (raiz / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    if not achado:
        raise ErroDeExportacao("pyproject.toml não tem `version = \"…\"` em [project]")
    return achado.group(1)


def montar_init(raiz: Path) -> str:
    modulos = ", ".join(MODULOS[c] for c in CAPITULOS)
    return ('"""O código do curso "Fazendo um LLM do Zero", um módulo por capítulo.\n\n'
            f"Módulos, na ordem dos capítulos: {modulos}.\n"
            "Use como `from llm_do_zero.gpt import GPTModel`. Cada módulo traz só o que o seu capítulo ensina e\n"
            "importa dos anteriores o que usa; este arquivo não reexporta nada.\n\n"
            f"{ASSINATURA} (a versão vem do pyproject.toml). Não edite à mão.\n"
            '"""\n\n'
            f'__version__ = "{versao(raiz)}"\n')


def montar_capitulos_anteriores(capitulo: str, blocos: dict[str, list[Bloco]]) -> str:
    """Texto de `NN-capitulo/capitulos_anteriores.py`: onde achar o pacote e o que cada capítulo anterior exportou."""
    exportados = exportados_por_capitulo(blocos)
    anteriores = CAPITULOS[:CAPITULOS.index(capitulo)]
    imports = [linha_from(f"{PACOTE}.{MODULOS[c]}", sorted((n for n in exportados[c] if not n.startswith("_")),
                                                           key=_ordem_nome))
               for c in anteriores if any(not n.startswith("_") for n in exportados[c])]
    return (f'"""O que os capítulos anteriores a {capitulo} exportaram: o índice do que este capítulo herda.\n\n'
            f"Cada nome vem do módulo de `{PACOTE}/` do capítulo que o ensina\n"
            f"(ex.: `{PACOTE}/{MODULOS[anteriores[-1]]}.py` é o {anteriores[-1]}).\n"
            f"{ASSINATURA}. Não edite à mão.\n"
            '"""\n'
            "import sys\n"
            "from pathlib import Path\n\n"
            "# A raiz do repositório (onde está o pacote) vale mais que uma cópia instalada: rode daqui, do Colab\n"
            "# ou de um script da pasta (torchrun), é sempre o código deste checkout.\n"
            "_RAIZ = str(Path(__file__).resolve().parent.parent)\n"
            "if _RAIZ not in sys.path:\n"
            "    sys.path.insert(0, _RAIZ)\n\n"
            + "\n".join(imports) + "\n")


def arquivos_esperados(raiz: Path = RAIZ) -> dict[Path, str]:
    """Caminho -> conteúdo que cada arquivo gerado deve ter (os .py já compilados; os dados, copiados)."""
    blocos = coletar(raiz)
    repetidos = nomes_repetidos(blocos)
    if repetidos:
        raise ErroDeExportacao("nomes exportados mais de uma vez (cada definição vive em um só lugar):\n  - "
                               + "\n  - ".join(repetidos))
    esperados = {raiz / PACOTE / "__init__.py": montar_init(raiz)}
    for i, cap in enumerate(CAPITULOS):
        if not (raiz / cap).is_dir():
            continue
        if blocos[cap]:
            esperados[raiz / PACOTE / f"{MODULOS[cap]}.py"] = montar_modulo(cap, blocos)
        if i > 0:
            esperados[raiz / cap / ARQUIVO_CAPITULO] = montar_capitulos_anteriores(cap, blocos)
    esperados = {caminho: compilar(texto, caminho) for caminho, texto in esperados.items()}
    for origem, destino in DADOS_DO_PACOTE.items():
        if (raiz / origem).is_file():
            esperados[raiz / PACOTE / destino] = (raiz / origem).read_text(encoding="utf-8")
    return esperados


def arquivos_gerados_existentes(raiz: Path = RAIZ) -> list[Path]:
    """Todo .py do repositório que traz a assinatura de arquivo gerado (para achar os que sobraram)."""
    achados = []
    pendentes = [raiz]
    while pendentes:
        pasta = pendentes.pop()
        for item in pasta.iterdir():
            if item.is_dir() and item.name not in PASTAS_IGNORADAS:
                pendentes.append(item)
            elif item.suffix == ".py" and ASSINATURA in item.read_text(encoding="utf-8", errors="replace")[:2000]:
                achados.append(item)
    return sorted(achados)


def main(argv: list[str] | None = None, raiz: Path = RAIZ) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="só confere se os arquivos estão em dia")
    args = parser.parse_args(argv)
    try:
        esperados = arquivos_esperados(raiz)
    except ErroDeExportacao as erro:
        print(f"Erro de exportação: {erro}")
        return 1

    desatualizados, sobrando = [], []
    for caminho, conteudo in esperados.items():
        atual = caminho.read_text(encoding="utf-8") if caminho.exists() else None
        if atual == conteudo:
            continue
        if args.check:
            desatualizados.append(caminho.relative_to(raiz).as_posix())
        else:
            caminho.parent.mkdir(parents=True, exist_ok=True)
            caminho.write_text(conteudo, encoding="utf-8")
            print(f"escrito: {caminho.relative_to(raiz).as_posix()}")
    for caminho in arquivos_gerados_existentes(raiz):
        if caminho in esperados:
            continue
        if args.check:
            sobrando.append(caminho.relative_to(raiz).as_posix())
        else:
            caminho.unlink()
            print(f"apagado (não é mais gerado): {caminho.relative_to(raiz).as_posix()}")
    if desatualizados:
        print("Arquivos gerados desatualizados (rode `python ferramentas/exportar.py`):")
        print("\n".join(f"  - {d}" for d in desatualizados))
    if sobrando:
        print("Arquivos gerados que não deveriam mais existir (rode `python ferramentas/exportar.py`):")
        print("\n".join(f"  - {s}" for s in sobrando))
    if desatualizados or sobrando:
        return 1
    if args.check:
        print("Exportações em dia.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
