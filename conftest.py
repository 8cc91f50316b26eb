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


def pytest_collection_modifyitems(items):
    """O nbval espera só 5 s pelas mensagens de saída de uma célula que já terminou.

    Numa CPU de 2 núcleos ocupada, depois de uma célula de treino com barra de progresso, essas mensagens podem
    demorar mais que isso, e a célula falharia sem erro nenhum no código. Damos 60 s.
    """
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = 60
