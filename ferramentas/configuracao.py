#!/usr/bin/env python3
"""A célula de configuração que abre todos os notebooks do curso (a canônica).

Ela é igual em todos os capítulos, a não ser pelo nome da pasta em CAPITULO. A versão do curso que ela baixa no
Colab fica num lugar só, o arquivo `VERSAO` da raiz (uma etiqueta do repositório, criada a cada publicação com
`git tag "$(cat VERSAO)" && git push --tags`). Um teste confere que cada notebook começa por esta célula.

Uso, depois de mudar a célula ou o arquivo VERSAO:
    python ferramentas/configuracao.py            # escreve a célula em todos os notebooks
    python ferramentas/configuracao.py --check    # só confere
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

RAIZ = Path(__file__).resolve().parent.parent

MODELO = r"""# Configuração do ambiente (a mesma célula abre todos os capítulos)
CAPITULO = "PASTA"
GUARDAR_NO_DRIVE = False   # no Colab, True guarda artefatos/ (modelos treinados) e os downloads no Google Drive
VERSAO = "VERSAO_DO_CURSO"   # a versão do curso que esta célula baixa
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

# O curso já está no disco? Procura na pasta atual, nas de cima e na cópia que esta célula baixou antes.
curso = next((pasta for base in (Path.cwd(), *Path.cwd().parents)
              for pasta in (base, base / "fazendo-um-llm-do-zero")
              if (pasta / "ferramentas" / "exportar.py").exists() and (pasta / CAPITULO).is_dir()), None)
if curso is None:                                  # no Colab, por exemplo: baixa a versão deste notebook
    curso = Path("fazendo-um-llm-do-zero").resolve()
    url = "https://github.com/vongrossi/fazendo-um-llm-do-zero"
    if subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", VERSAO, url, str(curso)]).returncode:
        print(f"A versão {VERSAO} ainda não foi publicada; baixando a mais recente.")
        subprocess.run(["git", "clone", "-q", "--depth", "1", url, str(curso)], check=True)
elif (curso / "VERSAO").exists() and (curso / "VERSAO").read_text().strip() != VERSAO:
    print(f"Aviso: a cópia do curso em {curso} é da versão {(curso / 'VERSAO').read_text().strip()}, e este "
          f"notebook é da {VERSAO}. Para atualizá-la: !git -C {curso} pull (ou apague a pasta e rode esta célula).")
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
if faltando:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *faltando], check=True)

import torch
_disp = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
_modo = os.environ.get("LLM_MODO") or ("completo" if _disp == "cuda" else "rapido")
print(f"Capítulo {CAPITULO} | Python {sys.version.split()[0]} | torch {torch.__version__} | "
      f"dispositivo: {_disp} | modo: {_modo}")"""


def versao_do_curso() -> str:
    """A versão registrada no arquivo VERSAO da raiz."""
    return (RAIZ / "VERSAO").read_text(encoding="utf-8").strip()


def celula_configuracao(capitulo: str) -> str:
    """Texto exato da célula de configuração do capítulo `capitulo` (ex.: '05-pretreino')."""
    return (MODELO.replace('CAPITULO = "PASTA"', f'CAPITULO = "{capitulo}"')
            .replace('VERSAO = "VERSAO_DO_CURSO"', f'VERSAO = "{versao_do_curso()}"'))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="só confere; sai com 1 se algum notebook for diferente")
    args = parser.parse_args(argv)
    diferentes = []
    for caminho in sorted(RAIZ.glob("[0-9][0-9]-*/notebook.ipynb")):
        nb = nbformat.read(caminho, as_version=4)
        celula = next(c for c in nb.cells if c.cell_type == "code")
        certo = celula_configuracao(caminho.parent.name)
        if celula.source != certo:
            diferentes.append(caminho.parent.name)
            if not args.check:
                celula.source = certo
                nbformat.write(nb, caminho)
    if args.check and diferentes:
        print("Célula de configuração diferente da canônica em: " + ", ".join(diferentes))
        return 1
    print(f"célula de configuração {'confere' if args.check else 'escrita'} "
          f"({len(diferentes)} notebook(s) {'diferentes' if args.check else 'atualizados'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
