"""O pacote instalado com pip, longe do repositório, acha os próprios dados (issue: o pacote funciona instalado).

Instala uma cópia do pacote num ambiente virtual novo (as dependências — torch, tiktoken… — vêm do Python do
sistema, porque o CI roda sem rede) e, de uma pasta sem nada do curso, carrega o conjunto de instruções e o
tokenizador do curso.
"""
import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

from llm_do_zero.tokens import COURSE_VOCAB_SIZE, course_bpe

RAIZ = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys
import llm_do_zero
from llm_do_zero.instrucoes import instruction_data_path, load_instruction_data
from llm_do_zero.tokens import course_tokenizer
dados = load_instruction_data()
tok = course_tokenizer()
print(json.dumps({"pacote": llm_do_zero.__file__, "dados": str(instruction_data_path()), "exemplos": len(dados),
                  "vocab": tok.n_vocab, "ids": tok.encode("Capitu olhou para mim.")}))
"""


def test_pacote_instalado_acha_o_conjunto_de_instrucoes_e_o_tokenizador(tmp_path):
    fonte = tmp_path / "fonte"
    fonte.mkdir()
    for nome in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(RAIZ / nome, fonte / nome)
    shutil.copytree(RAIZ / "llm_do_zero", fonte / "llm_do_zero", ignore=shutil.ignore_patterns("__pycache__"))
    ambiente = tmp_path / "venv"
    venv.create(ambiente, system_site_packages=True)      # o pip e o setuptools são os do sistema
    python = ambiente / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    str(fonte)], check=True, cwd=tmp_path)

    cache = tmp_path / "cache"                     # o tokenizador já treinado, como no cache de quem já o usou
    (cache / "tokenizadores").mkdir(parents=True)
    course_bpe().save(cache / "tokenizadores" / f"machado-{COURSE_VOCAB_SIZE}.json")
    longe = tmp_path / "outro-projeto"
    longe.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LLM_ARTEFATOS")}
    env["LLM_CACHE_DIR"] = str(cache)
    saida = subprocess.run([str(python), "-c", SCRIPT], cwd=longe, env=env, capture_output=True, text=True)
    assert saida.returncode == 0, saida.stderr
    info = json.loads(saida.stdout.strip().splitlines()[-1])
    assert str(ambiente) in info["pacote"] and str(RAIZ) not in info["pacote"]
    assert info["dados"].startswith(str(ambiente))
    original = json.loads((RAIZ / "07-instrucoes" / "dados" / "instrucoes.json").read_text(encoding="utf-8"))
    assert info["exemplos"] == len(original)
    assert info["vocab"] == course_bpe().to_tiktoken(f"machado-{COURSE_VOCAB_SIZE}").n_vocab
    assert info["ids"] == course_bpe().to_tiktoken(f"machado-{COURSE_VOCAB_SIZE}").encode("Capitu olhou para mim.")
