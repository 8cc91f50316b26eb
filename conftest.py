"""Configuração dos testes: modo rápido por padrão e caminhos absolutos para os dados offline.

As variáveis valem também para os kernels que o nbval abre (eles herdam o ambiente deste processo),
e cada kernel roda na pasta do seu capítulo — por isso os caminhos relativos viram absolutos aqui.
"""
import os
from pathlib import Path

RAIZ = Path(__file__).resolve().parent

os.environ.setdefault("LLM_MODO", "rapido")
os.environ.setdefault("MPLBACKEND", "Agg")
for variavel in ("LLM_DADOS_ESPELHO", "TIKTOKEN_CACHE_DIR"):
    valor = os.environ.get(variavel)
    if valor and not Path(valor).is_absolute():
        os.environ[variavel] = str((RAIZ / valor).resolve())
