"""A célula de configuração que abre todos os notebooks do curso (a canônica).

Ela é igual em todos os capítulos, a não ser pelo nome da pasta em CAPITULO. Um teste confere que cada notebook
começa por ela; ao mudá-la aqui, mude-a em todos os notebooks.
"""

MODELO = r"""# Configuração do ambiente (a mesma célula abre todos os capítulos)
CAPITULO = "PASTA"
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

if not (Path.cwd().name == CAPITULO and Path("../ferramentas/exportar.py").exists()):
    # Fora da pasta do capítulo (no Colab, por exemplo): baixa o curso e entra nela.
    repositorio = Path("fazendo-um-llm-do-zero")
    if not repositorio.exists():
        subprocess.run(["git", "clone", "--depth", "1",
                        "https://github.com/vongrossi/fazendo-um-llm-do-zero", str(repositorio)], check=True)
    os.chdir(repositorio / CAPITULO)
    sys.path.insert(0, str(Path.cwd()))
faltando = [p for p in ("torch", "tiktoken", "numpy", "matplotlib", "tqdm") if importlib.util.find_spec(p) is None]
if faltando:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *faltando], check=True)

import torch
_disp = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
_modo = os.environ.get("LLM_MODO") or ("completo" if _disp == "cuda" else "rapido")
print(f"Capítulo {CAPITULO} | Python {sys.version.split()[0]} | torch {torch.__version__} | "
      f"dispositivo: {_disp} | modo: {_modo}")"""


def celula_configuracao(capitulo: str) -> str:
    """Texto exato da célula de configuração do capítulo `capitulo` (ex.: '05-pretreino')."""
    return MODELO.replace('CAPITULO = "PASTA"', f'CAPITULO = "{capitulo}"')
