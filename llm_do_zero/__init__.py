"""O código do curso "Fazendo um LLM do Zero", um módulo por capítulo.

Módulos, na ordem dos capítulos: oficina, estatistica, tokens, atencao, gpt, pretreino, finetuning, instrucoes, extras.
Use como `from llm_do_zero.gpt import GPTModel`. Cada módulo traz só o que o seu capítulo ensina e
importa dos anteriores o que usa; este arquivo não reexporta nada.

ARQUIVO GERADO por `python ferramentas/exportar.py` (a versão vem do pyproject.toml). Não edite à mão.
"""

__version__ = "0.1.0"
