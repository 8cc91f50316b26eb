"""A ferramenta de exportação: o pacote `llm_do_zero/` e os `capitulos_anteriores.py` gerados das células `# exportar`.

Parte dos testes olha o repositório de verdade (tudo em dia, tamanhos, marcadores que apontam para a célula certa);
parte monta um curso de mentira numa pasta temporária, para ver a ferramenta acertar e errar como deve.
"""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
import exportar  # noqa: E402

MARCADOR = re.compile(r"^# %% (\d\d-[\w-]+)/notebook\.ipynb · célula (\d+)$", re.M)


# ---------------------------------------------------------------- o repositório

def test_arquivos_gerados_em_dia():
    """Equivale a `python ferramentas/exportar.py --check`."""
    assert exportar.main(["--check"]) == 0


def test_nenhum_nome_exportado_duas_vezes():
    assert exportar.nomes_repetidos(exportar.coletar()) == []


def test_um_modulo_por_capitulo_e_tamanhos():
    pacote = RAIZ / "llm_do_zero"
    esperados = {f"{m}.py" for m in exportar.MODULOS.values()} | {"__init__.py"}
    assert {p.name for p in pacote.glob("*.py")} == esperados
    linhas = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in pacote.glob("*.py")}
    assert max(linhas.values()) <= 900, linhas                  # um capítulo que passa disso pede outro capítulo
    for cap in exportar.CAPITULOS[1:]:
        assert len((RAIZ / cap / "capitulos_anteriores.py").read_text(encoding="utf-8").splitlines()) < 100


def definicoes_do_pacote():
    """(módulo, nome, nó) de cada função, classe e constante do topo dos módulos do pacote."""
    for caminho in sorted((RAIZ / "llm_do_zero").glob("*.py")):
        for no in ast.parse(caminho.read_text(encoding="utf-8")).body:
            if isinstance(no, (ast.FunctionDef, ast.ClassDef)):
                yield caminho.stem, no.name, no
            elif isinstance(no, ast.Assign):
                for alvo in no.targets:
                    if isinstance(alvo, ast.Name):
                        yield caminho.stem, alvo.id, no


def test_nenhum_nome_definido_em_dois_modulos():
    onde = {}
    for modulo, nome, _ in definicoes_do_pacote():
        onde.setdefault(nome, set()).add(modulo)
    assert {nome: sorted(m) for nome, m in onde.items() if len(m) > 1} == {}


def corpo_sem_docstring(no) -> str:
    corpo = no.body[1:] if (no.body and isinstance(no.body[0], ast.Expr)
                            and isinstance(getattr(no.body[0], "value", None), ast.Constant)) else no.body
    return "\n".join(ast.dump(instrucao) for instrucao in corpo)


def test_nenhum_corpo_de_funcao_repetido_entre_modulos():
    """Uma lógica escrita duas vezes é uma lógica que vai divergir: cada corpo de função com 3 ou mais instruções
    aparece uma vez só no pacote (o código de uma função usada em dois capítulos mora no primeiro deles)."""
    vistos = {}
    for modulo, nome, no in definicoes_do_pacote():
        if isinstance(no, ast.FunctionDef) and len(no.body) >= 3:
            vistos.setdefault(corpo_sem_docstring(no), []).append(f"{modulo}.{nome}")
    assert [nomes for nomes in vistos.values() if len(nomes) > 1] == []


def test_init_tem_versao_e_nao_reexporta_nada():
    import llm_do_zero

    texto = (RAIZ / "llm_do_zero" / "__init__.py").read_text(encoding="utf-8")
    assert re.search(r'^version = "' + re.escape(llm_do_zero.__version__) + '"$',
                     (RAIZ / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    assert "import" not in texto.split('"""', 2)[2]


@pytest.mark.parametrize("capitulo", exportar.CAPITULOS)
def test_marcadores_apontam_para_a_celula_exportada(capitulo):
    """Cada `# %% <capítulo>/notebook.ipynb · célula N` aponta para uma célula `# exportar` do próprio capítulo."""
    modulo = RAIZ / "llm_do_zero" / f"{exportar.MODULOS[capitulo]}.py"
    texto = modulo.read_text(encoding="utf-8")
    assert f"`{capitulo}/notebook.ipynb`" in texto.split('"""', 2)[1]
    marcadores = MARCADOR.findall(texto)
    assert marcadores, f"{modulo.name} sem marcadores"
    celulas = json.loads((RAIZ / capitulo / "notebook.ipynb").read_text(encoding="utf-8"))["cells"]
    for cap, n in marcadores:
        assert cap == capitulo
        fonte = "".join(celulas[int(n) - 1]["source"])
        assert fonte.startswith(exportar.MARCA), f"{capitulo} célula {n} não é uma célula # exportar"


def test_imports_entre_modulos_so_para_tras():
    ordem = list(exportar.MODULOS.values())
    for i, mod in enumerate(ordem):
        texto = (RAIZ / "llm_do_zero" / f"{mod}.py").read_text(encoding="utf-8")
        usados = re.findall(r"^from llm_do_zero\.(\w+) import", texto, re.M)
        assert all(ordem.index(u) < i for u in usados), f"{mod} importa de {usados}"
        assert "capitulos_anteriores" not in texto


@pytest.mark.parametrize("capitulo", exportar.CAPITULOS[1:])
def test_capitulos_anteriores_importa_da_pasta_do_capitulo(capitulo):
    """Rodado da pasta do capítulo, num processo novo, o índice importa e acha o pacote deste checkout."""
    codigo = ("import capitulos_anteriores, llm_do_zero, pathlib; "
              "print(pathlib.Path(llm_do_zero.__file__).resolve().parent.parent)")
    ambiente = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    saida = subprocess.run([sys.executable, "-c", codigo], cwd=RAIZ / capitulo, env=ambiente,
                           capture_output=True, text=True, timeout=120)
    assert saida.returncode == 0, saida.stderr
    assert Path(saida.stdout.strip()) == RAIZ


# ---------------------------------------------------------------- um curso de mentira

def _notebook(celulas: list[tuple[str, str]]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": tipo, "metadata": {}, "source": fonte} for tipo, fonte in celulas]}


def _curso(raiz: Path, notebooks: dict[str, list[tuple[str, str]]]) -> Path:
    (raiz / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "9.9.9"\n', encoding="utf-8")
    for cap, celulas in notebooks.items():
        (raiz / cap).mkdir(parents=True)
        (raiz / cap / "notebook.ipynb").write_text(json.dumps(_notebook(celulas)), encoding="utf-8")
    return raiz


OFICINA = [("markdown", "# Oficina"),
           ("code", "# exportar\nimport os\n\nSEPARADOR = os.sep\n\n\ndef juntar(a, b):\n    return a + SEPARADOR + b"),
           ("code", "juntar('a', 'b')")]
ESTATISTICA = [("code", "# exportar\nimport os\nimport json\n\nfrom capitulos_anteriores import juntar\n\n\n"
                        "def caminho(*partes):\n    return juntar(partes[0], json.dumps(len(partes)))")]


def test_gera_modulos_com_marcadores_e_imports_calculados(tmp_path, capsys):
    raiz = _curso(tmp_path, {"00-oficina": OFICINA, "01-estatistica": ESTATISTICA})
    assert exportar.main([], raiz=raiz) == 0
    oficina = (raiz / "llm_do_zero" / "oficina.py").read_text(encoding="utf-8")
    estatistica = (raiz / "llm_do_zero" / "estatistica.py").read_text(encoding="utf-8")
    assert "# %% 00-oficina/notebook.ipynb · célula 2\n" in oficina and "juntar('a', 'b')" not in oficina
    assert "import json\nimport os\n" in estatistica                            # imports externos juntos
    assert "from llm_do_zero.oficina import juntar\n" in estatistica            # calculado, não copiado
    assert "capitulos_anteriores" not in estatistica
    assert '__version__ = "9.9.9"' in (raiz / "llm_do_zero" / "__init__.py").read_text(encoding="utf-8")
    indice = (raiz / "01-estatistica" / "capitulos_anteriores.py").read_text(encoding="utf-8")
    assert "from llm_do_zero.oficina import juntar, SEPARADOR\n" in indice
    assert exportar.main(["--check"], raiz=raiz) == 0
    codigo = "from llm_do_zero.estatistica import caminho; print(caminho('x', 'y'))"
    saida = subprocess.run([sys.executable, "-c", codigo], cwd=raiz, capture_output=True, text=True, timeout=60)
    assert saida.stdout.strip() == "x" + os.sep + "2", saida.stderr


def test_nome_de_capitulo_posterior_e_erro_de_geracao(tmp_path, capsys):
    usa_depois = [("markdown", "# Oficina"), ("code", "# exportar\ndef f():\n    return caminho('a')")]
    raiz = _curso(tmp_path, {"00-oficina": usa_depois, "01-estatistica": ESTATISTICA})
    assert exportar.main([], raiz=raiz) == 1
    saida = capsys.readouterr().out
    assert "00-oficina/notebook.ipynb · célula 2" in saida and "'caminho'" in saida and "01-estatistica" in saida
    assert not (raiz / "llm_do_zero").exists()                                  # nada escrito pela metade


def test_nome_de_celula_comum_e_erro_de_geracao(tmp_path, capsys):
    celulas = [("code", "limite = 3"), ("code", "# exportar\ndef cortar(xs):\n    return xs[:limite]")]
    raiz = _curso(tmp_path, {"00-oficina": celulas})
    assert exportar.main([], raiz=raiz) == 1
    saida = capsys.readouterr().out
    assert "célula 2" in saida and "'limite'" in saida and "célula comum" in saida


def test_nome_exportado_duas_vezes_e_erro(tmp_path, capsys):
    repete = [("code", "# exportar\ndef juntar(a, b):\n    return a")]
    raiz = _curso(tmp_path, {"00-oficina": OFICINA, "01-estatistica": repete})
    assert exportar.main(["--check"], raiz=raiz) == 1
    assert "juntar: 00-oficina/notebook.ipynb · célula 2; 01-estatistica/notebook.ipynb · célula 1" in \
        capsys.readouterr().out


def test_celula_com_erro_de_sintaxe_nao_gera_nada(tmp_path, capsys):
    raiz = _curso(tmp_path, {"00-oficina": [("code", "# exportar\ndef f(:\n    pass")]})
    assert exportar.main([], raiz=raiz) == 1
    assert "célula 1" in capsys.readouterr().out and not (raiz / "llm_do_zero").exists()


def test_check_acusa_desatualizado_e_arquivo_que_sobrou(tmp_path, capsys):
    raiz = _curso(tmp_path, {"00-oficina": OFICINA, "01-estatistica": ESTATISTICA})
    assert exportar.main([], raiz=raiz) == 0
    velho = raiz / "llm_do_zero" / "antigo.py"
    velho.write_text(f'"""{exportar.ASSINATURA} há muito tempo."""\n', encoding="utf-8")
    (raiz / "llm_do_zero" / "oficina.py").write_text("# editado à mão\n", encoding="utf-8")
    capsys.readouterr()
    assert exportar.main(["--check"], raiz=raiz) == 1
    saida = capsys.readouterr().out
    assert "llm_do_zero/oficina.py" in saida and "llm_do_zero/antigo.py" in saida
    assert exportar.main([], raiz=raiz) == 0                                    # regenera e apaga o que sobrou
    assert not velho.exists() and exportar.main(["--check"], raiz=raiz) == 0


def test_dependencias_do_pacote_estao_no_requirements():
    """O que o pyproject.toml declara para o pacote é o mesmo que o requirements.txt instala para os notebooks."""
    pyproject = (RAIZ / "pyproject.toml").read_text(encoding="utf-8")
    bloco = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.M | re.S).group(1)
    declaradas = re.findall(r'"([^"]+)"', bloco)
    requisitos = {linha.strip() for linha in (RAIZ / "requirements.txt").read_text(encoding="utf-8").splitlines()}
    assert declaradas and set(declaradas) <= requisitos, set(declaradas) - requisitos
    assert "-e ." in requisitos
