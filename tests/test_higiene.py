"""Higiene dos notebooks: cada capítulo presente segue as convenções do curso (GUIA §3, §4, §8, §9)."""
import ast
import json
import re
import sys
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
from configuracao import botao_colab, celula_configuracao  # noqa: E402
from exportar import CAPITULOS, coletar, exportados_por_capitulo, nomes_definidos  # noqa: E402

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
    assert botao_colab(capitulo) in primeira          # o mesmo endereço (e a mesma versão) que a célula clona


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
        achado = PENDENCIA.search(_fonte(celula))
        assert not achado, f"{capitulo}: pendência no texto: {achado}"


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


@pytest.mark.parametrize("capitulo", NOTEBOOKS)
def test_sem_tempos_por_celula_nem_widgets_salvos(capitulo):
    """O notebook gravado não guarda tempos de execução, estado de widgets nem barras com `\\r` por resolver."""
    nb = _notebook(capitulo)
    assert "widgets" not in nb["metadata"], f"{capitulo}: estado de widgets salvo (use ferramentas/executar.py)"
    for n, celula in enumerate(nb["cells"], start=1):
        assert "execution" not in celula.get("metadata", {}), f"{capitulo} célula {n}: tempos de execução salvos"
        for saida in celula.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in saida.get("data", {}), (
                f"{capitulo} célula {n}: saída de widget (as barras do curso são texto: progress_bar)")
            if saida.get("output_type") == "stream":
                assert "\r" not in "".join(saida["text"]), f"{capitulo} célula {n}: barra de progresso não resolvida"


_EXPORTADOS = exportados_por_capitulo(coletar())
_IMPORT_DO_PACOTE = re.compile(r"^\s*(?:from|import)\s+llm_do_zero\.(\w+)", re.M)


@pytest.mark.parametrize("capitulo", NOTEBOOKS)
def test_notebook_nao_redefine_o_passado_nem_importa_do_futuro(capitulo):
    """Um capítulo usa o que herdou (de capitulos_anteriores) sem redefinir e nunca importa de um capítulo posterior."""
    indice = CAPITULOS.index(capitulo)
    herdados = {n for c in CAPITULOS[:indice] for n in _EXPORTADOS[c]}
    modulos_anteriores = {c.split("-", 1)[1] for c in CAPITULOS[:indice]}
    for n, celula in enumerate(_notebook(capitulo)["cells"], start=1):
        if celula["cell_type"] != "code":
            continue
        fonte = "\n".join(linha for linha in _fonte(celula).splitlines() if not linha.lstrip().startswith(("%", "!")))
        redefinidos = set(nomes_definidos(fonte)) & herdados
        assert not redefinidos, f"{capitulo} célula {n} redefine o que um capítulo anterior exportou: {redefinidos}"
        for no in ast.walk(ast.parse(fonte)):
            if isinstance(no, ast.ImportFrom) and no.module == "capitulos_anteriores":
                de_fora = {a.name for a in no.names} - herdados
                assert not de_fora, f"{capitulo} célula {n}: {de_fora} não vem de um capítulo anterior"
        for modulo in _IMPORT_DO_PACOTE.findall(fonte):
            assert modulo in modulos_anteriores, f"{capitulo} célula {n} importa llm_do_zero.{modulo}, que vem depois"


def test_barras_de_progresso_so_pela_progress_bar():
    """Só a `progress_bar` do capítulo 00 importa a tqdm: nenhum laço do curso usa a barra de widget (tqdm.auto)."""
    tqdm = re.compile(r"^\s*(?:from|import)\s+tqdm", re.M)
    achados = []
    for capitulo in NOTEBOOKS:
        for n, celula in enumerate(_notebook(capitulo)["cells"], start=1):
            fonte = _fonte(celula)
            if celula["cell_type"] == "code" and tqdm.search(fonte) and "def progress_bar(" not in fonte:
                achados.append(f"{capitulo} célula {n}")
    for arquivo in sorted((RAIZ / "llm_do_zero").glob("*.py")) + sorted(RAIZ.glob("[0-9][0-9]-*/*.py")):
        texto = arquivo.read_text(encoding="utf-8")
        if tqdm.search(texto) and "def progress_bar(" not in texto:
            achados.append(arquivo.relative_to(RAIZ).as_posix())
    assert not achados, f"tqdm importada fora da progress_bar: {achados}"


# Onde o GPT-2 é mesmo o assunto: o capítulo 02 (o tokenizador dele), o 03/04 (o GPT-2 montado e comparado) e, no
# 05, a seção dos pesos originais (que só fazem sentido com o tokenizador deles). Do 05 em diante, todo modelo
# nosso usa o tokenizador que veio com ele.
GPT2_PERMITIDO = {"02-tokens", "03-atencao", "04-gpt", "llm_do_zero/tokens.py", "llm_do_zero/gpt.py"}
GPT2_FIXO = re.compile(r"\b50256\b|get_encoding\(\s*[\"']gpt2[\"']\s*\)")
# no 05, os dois lugares que querem dizer "o GPT-2 original": a seção dos pesos e a fonte 'gpt2' do modelo base
GPT2_NO_05 = ('tokenizer_gpt2 = tiktoken.get_encoding("gpt2")',
              'model, tiktoken.get_encoding("gpt2"), gpt2_config("gpt2"), "gpt2"')


def _trechos_gpt2(texto: str) -> list[str]:
    return [texto[max(0, m.start() - 60):m.end() + 20].replace("\n", " ") for m in GPT2_FIXO.finditer(texto)]


def test_sem_ids_do_gpt2_fixos_onde_o_tokenizador_e_o_do_modelo():
    achados = []
    for capitulo in NOTEBOOKS:
        if capitulo in GPT2_PERMITIDO:
            continue
        for n, celula in enumerate(_notebook(capitulo)["cells"], start=1):
            if celula["cell_type"] != "code":
                continue
            fonte = _fonte(celula)
            for permitido in GPT2_NO_05 if capitulo == "05-pretreino" else ():
                fonte = fonte.replace(permitido, "")
            achados += [f"{capitulo} célula {n}: …{t}…" for t in _trechos_gpt2(fonte)]
    for arquivo in sorted((RAIZ / "llm_do_zero").glob("*.py")) + sorted(RAIZ.glob("0[5-8]-*/*.py")):
        nome = arquivo.relative_to(RAIZ).as_posix()
        if nome in GPT2_PERMITIDO:
            continue
        texto = arquivo.read_text(encoding="utf-8")
        for permitido in GPT2_NO_05 if nome == "llm_do_zero/pretreino.py" else ():
            texto = texto.replace(permitido, "")
        achados += [f"{nome}: …{t}…" for t in _trechos_gpt2(texto)]
    assert not achados, "ids ou tokenizador do GPT-2 fixos onde vale o tokenizador do modelo:\n" + "\n".join(achados)


def test_a_busca_por_ids_fixos_do_gpt2_acha_o_que_deve():
    assert _trechos_gpt2("pad_token_id: int = 50256") and _trechos_gpt2("tiktoken.get_encoding('gpt2')")
    assert not _trechos_gpt2("tokenizer.eot_token") and not _trechos_gpt2("502567")
