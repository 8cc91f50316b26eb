#!/usr/bin/env python3
"""A célula de configuração que abre todos os notebooks do curso (a canônica) e os botões "Abrir no Colab".

A célula é igual em todos os capítulos, a não ser pelo nome da pasta em CAPITULO. A versão do curso fica num lugar
só, o arquivo `VERSAO` da raiz, e dela saem as duas pontas do caminho de quem estuda no Colab: o botão abre o
notebook na etiqueta (tag) `VERSAO` do repositório, e a célula clona o código nessa mesma etiqueta. Quem publica
uma versão usa `python ferramentas/publicar.py`, que muda `VERSAO`, reescreve células e botões e mostra os
comandos do git para criar e enviar a etiqueta.

Uso:
    python ferramentas/configuracao.py [--capitulo 05-pretreino]   # só mostra o botão e a célula (não grava nada)
    python ferramentas/configuracao.py --escrever   # reescreve a célula dos notebooks e os botões do Colab
    python ferramentas/configuracao.py --check      # só confere; sai com 1 se algo estiver desatualizado

`--escrever` mexe na primeira célula de código de cada `*/notebook.ipynb` e, nas células de texto dos notebooks,
nos `*/README.md`, no README.md da raiz e no links.md, só na etiqueta dos endereços do Colab deste repositório.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

RAIZ = Path(__file__).resolve().parent.parent
# De onde a célula clona o curso. Os testes trocam este endereço, no texto gerado, pelo de um repositório local.
REPOSITORIO = "https://github.com/vongrossi/fazendo-um-llm-do-zero"
ESCUDO_COLAB = "https://colab.research.google.com/assets/colab-badge.svg"

MODELO = r'''# Configuração do ambiente (a mesma célula abre todos os capítulos)
CAPITULO = "PASTA"
GUARDAR_NO_DRIVE = False   # no Colab, True guarda artefatos/ (modelos treinados) e os downloads no Google Drive
VERSAO = "VERSAO_DO_CURSO"   # a versão do curso: a deste notebook, a do botão do Colab e a do código que ela baixa
REPOSITORIO = "ENDERECO_DO_REPOSITORIO"
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path


class ErroNaConfiguracao(Exception):
    """Um problema que esta célula sabe explicar: o Jupyter mostra só a mensagem, sem o rastreamento (traceback)."""
    def _render_traceback_(self):
        return [f"Erro na configuração: {self}"]


def tem_o_capitulo(pasta):
    """A pasta é uma cópia do curso com este capítulo?"""
    return (pasta / "ferramentas" / "exportar.py").exists() and (pasta / CAPITULO).is_dir()


def clonar(ref, pasta):
    """`git clone` da etiqueta `ref` (None: a versão mais recente) numa pasta nova; devolve o resultado do git."""
    shutil.rmtree(pasta, ignore_errors=True)               # sobra de uma tentativa interrompida
    ramo = ["--branch", ref] if ref else []
    return subprocess.run(["git", "clone", "-q", "--depth", "1", *ramo, REPOSITORIO, str(pasta)],
                          capture_output=True, text=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})


def baixar_curso(destino):
    """Clona numa pasta temporária e só a renomeia para `destino` depois de ver que o capítulo está lá."""
    if destino.exists():
        raise ErroNaConfiguracao(f"a pasta {destino} existe, mas não tem o capítulo {CAPITULO} (está incompleta). "
                                 f"Apague-a (no Colab: !rm -rf {destino}) e rode esta célula de novo.")
    if shutil.which("git") is None:
        raise ErroNaConfiguracao("para baixar o curso é preciso o git. Instale-o (https://git-scm.com) e rode "
                                 "esta célula de novo.")
    temporaria = destino.with_name(destino.name + ".baixando")
    git = clonar(VERSAO, temporaria)
    if git.returncode != 0:                                 # a etiqueta não existe (ou falta internet)
        git = clonar(None, temporaria)
        if git.returncode != 0:
            shutil.rmtree(temporaria, ignore_errors=True)
            motivo = git.stderr.strip().splitlines()[-1] if git.stderr.strip() else "sem detalhes"
            raise ErroNaConfiguracao(f"não consegui baixar o curso de {REPOSITORIO} (o git disse: {motivo}). "
                                     "Confira a conexão com a internet e rode esta célula de novo.")
        print(f"A versão {VERSAO} não está publicada; baixei a mais recente, que pode diferir deste notebook.")
    if not tem_o_capitulo(temporaria):
        shutil.rmtree(temporaria)
        raise ErroNaConfiguracao(f"o curso baixado de {REPOSITORIO} não tem a pasta {CAPITULO}: este notebook é "
                                 f"de uma versão ({VERSAO}) que o repositório ainda não publicou. Abra o notebook "
                                 f"pelo botão do Colab no README do repositório ({REPOSITORIO}).")
    temporaria.rename(destino)                              # de uma vez: ou a cópia inteira, ou nada
    print(f"Curso baixado em {destino}")


# O curso já está no disco? Procura na pasta atual, nas de cima e na cópia que esta célula baixou antes.
copia = f"fazendo-um-llm-do-zero-{VERSAO}"
curso = next((pasta for base in (Path.cwd(), *Path.cwd().parents) for pasta in (base, base / copia)
              if tem_o_capitulo(pasta)), None)
if curso is None:                                           # no Colab, por exemplo: baixa esta versão do curso
    curso = Path(copia).resolve()
    baixar_curso(curso)
elif (curso / "VERSAO").exists() and (curso / "VERSAO").read_text().strip() != VERSAO:
    print(f"Aviso: a cópia do curso em {curso} é da versão {(curso / 'VERSAO').read_text().strip()}, e este "
          f"notebook é da {VERSAO}. Para atualizá-la: !git -C {curso} pull")
os.chdir(curso / CAPITULO)
if str(Path.cwd()) not in sys.path:
    sys.path.insert(0, str(Path.cwd()))
if GUARDAR_NO_DRIVE and not (importlib.util.find_spec("google") and importlib.util.find_spec("google.colab")):
    print("GUARDAR_NO_DRIVE só vale no Colab; aqui, artefatos/ já fica no seu disco.")
elif GUARDAR_NO_DRIVE:
    from google.colab import drive
    drive.mount("/content/drive")
    no_drive = Path("/content/drive/MyDrive/fazendo-um-llm-do-zero")
    os.environ["LLM_ARTEFATOS"] = str(no_drive / "artefatos")
    os.environ["LLM_CACHE_DIR"] = str(no_drive / "dados-cache")
    print(f"Modelos treinados e downloads ficam no seu Drive, em {no_drive}")
faltando = [p for p in ("torch", "tiktoken", "numpy", "matplotlib", "tqdm") if importlib.util.find_spec(p) is None]
if faltando and subprocess.run([sys.executable, "-m", "pip", "install", "-q", *faltando]).returncode != 0:
    raise ErroNaConfiguracao(f"não consegui instalar {' '.join(faltando)}. Confira a internet (ou rode "
                             f"!pip install {' '.join(faltando)}) e rode esta célula de novo.")

import torch
_disp = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
_modo = os.environ.get("LLM_MODO") or ("completo" if _disp == "cuda" else "rapido")
print(f"Capítulo {CAPITULO} | curso {VERSAO} | Python {sys.version.split()[0]} | torch {torch.__version__} | "
      f"dispositivo: {_disp} | modo: {_modo}")'''


def versao_do_curso(raiz: Path = RAIZ) -> str:
    """A versão registrada no arquivo VERSAO da raiz."""
    return (raiz / "VERSAO").read_text(encoding="utf-8").strip()


def celula_configuracao(capitulo: str, versao: str | None = None, repositorio: str = REPOSITORIO) -> str:
    """Texto exato da célula de configuração do capítulo `capitulo` (ex.: '05-pretreino')."""
    return (MODELO.replace('CAPITULO = "PASTA"', f'CAPITULO = "{capitulo}"')
            .replace('VERSAO = "VERSAO_DO_CURSO"', f'VERSAO = "{versao or versao_do_curso()}"')
            .replace('REPOSITORIO = "ENDERECO_DO_REPOSITORIO"', f'REPOSITORIO = "{repositorio}"'))


def _colab(repositorio: str = REPOSITORIO) -> str:
    """Começo dos endereços do Colab que abrem um notebook deste repositório, até antes da etiqueta."""
    return "https://colab.research.google.com/github/" + repositorio.removeprefix("https://github.com/") + "/blob/"


def endereco_colab(capitulo: str, versao: str | None = None) -> str:
    """Endereço que abre no Colab o notebook do capítulo, na etiqueta `versao` (a do arquivo VERSAO)."""
    return f"{_colab()}{versao or versao_do_curso()}/{capitulo}/notebook.ipynb"


def botao_colab(capitulo: str, versao: str | None = None) -> str:
    """O botão "Abrir no Colab" (markdown) do título do notebook e do README do capítulo."""
    return f"[![Abrir no Colab]({ESCUDO_COLAB})]({endereco_colab(capitulo, versao)})"


def _na_versao(texto: str, versao: str) -> str:
    """O texto com todo endereço do Colab deste repositório apontando para a etiqueta `versao`."""
    return re.sub(re.escape(_colab()) + r"[^/\s()\"'<>]+/", lambda _: f"{_colab()}{versao}/", texto)


def _texto_do_notebook(caminho: Path, capitulo: str, versao: str) -> tuple[str, list[str]]:
    """O notebook com a célula de configuração e os botões em dia (JSON como o Jupyter grava) e o que falta nele."""
    nb = json.loads(caminho.read_text(encoding="utf-8"))
    problemas = []
    codigo = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if codigo:
        codigo[0]["source"] = celula_configuracao(capitulo, versao).splitlines(keepends=True)
    else:
        problemas.append("não tem célula de código")
    for celula in nb["cells"]:
        if celula["cell_type"] == "markdown":
            fonte = "".join(celula["source"])
            if _na_versao(fonte, versao) != fonte:
                celula["source"] = _na_versao(fonte, versao).splitlines(keepends=True)
    if not nb["cells"] or botao_colab(capitulo, versao) not in "".join(nb["cells"][0]["source"]):
        problemas.append(f"a primeira célula não tem o botão {botao_colab(capitulo, versao)}")
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n", problemas


def _gravar(caminho: Path, texto: str) -> None:
    """Grava de uma vez: num arquivo ao lado e depois renomeia (quem lê nunca vê o arquivo pela metade)."""
    temporario = caminho.with_name(caminho.name + ".gravando")
    temporario.write_text(texto, encoding="utf-8")
    os.replace(temporario, caminho)


def atualizar(raiz: Path = RAIZ, escrever: bool = False, versao: str | None = None) -> tuple[list[str], list[str]]:
    """Confere (ou, com `escrever`, reescreve) células e botões; devolve os arquivos diferentes e os problemas."""
    versao = versao or versao_do_curso(raiz)
    novos, problemas = {}, []
    for caminho in sorted(raiz.glob("[0-9][0-9]-*/notebook.ipynb")):
        capitulo = caminho.parent.name
        novos[caminho], faltas = _texto_do_notebook(caminho, capitulo, versao)
        problemas += [f"{capitulo}/notebook.ipynb: {falta}" for falta in faltas]
        leiame = caminho.parent / "README.md"
        if leiame.exists():
            novos[leiame] = _na_versao(leiame.read_text(encoding="utf-8"), versao)
            if botao_colab(capitulo, versao) not in novos[leiame]:
                problemas.append(f"{capitulo}/README.md: falta o botão {botao_colab(capitulo, versao)}")
    for caminho in (raiz / "README.md", raiz / "links.md"):
        if caminho.exists():
            novos[caminho] = _na_versao(caminho.read_text(encoding="utf-8"), versao)
    diferentes = [caminho for caminho, texto in novos.items() if caminho.read_text(encoding="utf-8") != texto]
    if escrever:
        for caminho in diferentes:
            _gravar(caminho, novos[caminho])
    return [str(caminho.relative_to(raiz)) for caminho in diferentes], problemas


def main(argv: list[str] | None = None, raiz: Path = RAIZ) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    acao = parser.add_mutually_exclusive_group()
    acao.add_argument("--escrever", action="store_true", help="reescreve as células e os botões desatualizados")
    acao.add_argument("--check", action="store_true", help="só confere; sai com 1 se algo estiver desatualizado")
    parser.add_argument("--capitulo", default="00-oficina", help="o capítulo mostrado sem --escrever nem --check")
    args = parser.parse_args(argv)
    if not (args.escrever or args.check):
        print(botao_colab(args.capitulo, versao_do_curso(raiz)) + "\n")
        print(celula_configuracao(args.capitulo, versao_do_curso(raiz)))
        print("\n(nada foi gravado; para atualizar os notebooks e os READMEs: --escrever)", file=sys.stderr)
        return 0
    diferentes, problemas = atualizar(raiz, escrever=args.escrever)
    for problema in problemas:
        print(f"Problema: {problema}", file=sys.stderr)
    if args.check:
        if diferentes:
            print("Célula de configuração ou botão do Colab desatualizados em: " + ", ".join(diferentes)
                  + "\n(rode: python ferramentas/configuracao.py --escrever)", file=sys.stderr)
        else:
            print(f"células de configuração e botões do Colab conferem (versão {versao_do_curso(raiz)})")
        return 1 if diferentes or problemas else 0
    print(f"versão {versao_do_curso(raiz)}: {len(diferentes)} arquivo(s) reescrito(s)"
          + (": " + ", ".join(diferentes) if diferentes else ""))
    return 1 if problemas else 0


if __name__ == "__main__":
    sys.exit(main())
