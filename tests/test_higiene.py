"""Higiene dos notebooks: cada capítulo presente segue as convenções do curso (GUIA §3, §8, §9)."""
import json
import re
import sys
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
from configuracao import celula_configuracao  # noqa: E402
from exportar import CAPITULOS  # noqa: E402

NOTEBOOKS = [c for c in CAPITULOS if (RAIZ / c / "notebook.ipynb").exists()]
# pendências e marcadores de texto por preencher (ex.: "TEMPO_RAPIDO", "RESULTADOS" no lugar de uma tabela)
PENDENCIA = re.compile(r"\b(TODO|FIXME|XXX|TBD|TEMPO_?[A-Z0-9]+|RESULTADOS|KV[A-Z]+)\b")
CAMINHO_LOCAL = re.compile(r"(?<![\w:/.])/(?:home|root|tmp|Users|mnt|opt|var|work)/[\w.]|[A-Z]:\\\\Users")


def _notebook(capitulo: str) -> dict:
    return json.loads((RAIZ / capitulo / "notebook.ipynb").read_text(encoding="utf-8"))


def _fonte(celula: dict) -> str:
    return "".join(celula.get("source", []))


def test_ha_notebooks():
    assert "00-oficina" in NOTEBOOKS


@pytest.mark.parametrize("capitulo", NOTEBOOKS)
def test_formato_e_execucao_completa(capitulo):
    nb = _notebook(capitulo)
    assert nb["nbformat"] == 4
    codigo = [c for c in nb["cells"] if c["cell_type"] == "code" and _fonte(c).strip()]
    contagens = [c.get("execution_count") for c in codigo]
    assert contagens == list(range(1, len(codigo) + 1)), (
        f"{capitulo}: execute o notebook de cima a baixo num kernel novo (python ferramentas/executar.py)")
    erros = [c.get("execution_count") for c in codigo
             if any(s.get("output_type") == "error" for s in c.get("outputs", []))]
    assert not erros, f"{capitulo}: células com erro na saída: {erros}"


@pytest.mark.parametrize("capitulo", NOTEBOOKS)
def test_titulo_com_badge_do_colab_no_caminho_certo(capitulo):
    nb = _notebook(capitulo)
    primeira = _fonte(nb["cells"][0])
    assert nb["cells"][0]["cell_type"] == "markdown" and primeira.startswith("# Capítulo")
    url = f"https://colab.research.google.com/github/vongrossi/fazendo-um-llm-do-zero/blob/main/{capitulo}/notebook.ipynb"
    assert url in primeira


@pytest.mark.parametrize("capitulo", NOTEBOOKS)
def test_celula_de_configuracao_canonica(capitulo):
    codigo = [c for c in _notebook(capitulo)["cells"] if c["cell_type"] == "code"]
    assert _fonte(codigo[0]) == celula_configuracao(capitulo), (
        f"{capitulo}: a primeira célula de código deve ser a de configuração de ferramentas/configuracao.py")


@pytest.mark.parametrize("capitulo", NOTEBOOKS)
def test_sem_caminhos_da_maquina_nem_pendencias(capitulo):
    texto = (RAIZ / capitulo / "notebook.ipynb").read_text(encoding="utf-8")
    achado = CAMINHO_LOCAL.search(texto)
    assert achado is None, f"{capitulo}: caminho local na saída ou no código: {achado.group(0)}…"
    for celula in _notebook(capitulo)["cells"]:
        assert not PENDENCIA.search(_fonte(celula)), f"{capitulo}: pendência no texto: {PENDENCIA.search(_fonte(celula))}"


@pytest.mark.parametrize("capitulo", NOTEBOOKS)
def test_textos_do_capitulo_sem_marcadores_por_preencher(capitulo):
    for arquivo in sorted((RAIZ / capitulo).glob("*.md")):
        achado = PENDENCIA.search(arquivo.read_text(encoding="utf-8"))
        assert achado is None, f"{capitulo}/{arquivo.name}: marcador por preencher: {achado.group(0)}"


@pytest.mark.parametrize("capitulo", NOTEBOOKS)
def test_anatomia_do_capitulo(capitulo):
    """Objetivos, resumo, exercícios, soluções e próximo capítulo; README e diário na pasta."""
    titulos = "\n".join(_fonte(c) for c in _notebook(capitulo)["cells"] if c["cell_type"] == "markdown")
    for secao in ("## Neste capítulo você vai", "## Resumo", "## Exercícios", "## Soluções"):
        assert secao in titulos, f"{capitulo}: falta a seção '{secao}'"
    if capitulo != CAPITULOS[-1]:
        assert "## Próximo capítulo" in titulos, f"{capitulo}: falta a seção '## Próximo capítulo'"
    for arquivo in ("README.md", "diario.md"):
        assert (RAIZ / capitulo / arquivo).exists(), f"{capitulo}/{arquivo} não existe"


@pytest.mark.parametrize("capitulo", NOTEBOOKS)
def test_figuras_e_tamanho(capitulo):
    caminho = RAIZ / capitulo / "notebook.ipynb"
    figuras = sum(1 for c in _notebook(capitulo)["cells"] for s in c.get("outputs", [])
                  if "image/png" in s.get("data", {}))
    assert figuras >= 2, f"{capitulo}: o capítulo precisa de pelo menos 2 figuras (tem {figuras})"
    assert caminho.stat().st_size < 3_000_000, f"{capitulo}: notebook com mais de 3 MB"
