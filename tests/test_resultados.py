"""Os números dos textos do curso vêm dos resultados gravados (ferramentas/resultados.py)."""
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
import resultados  # noqa: E402

REGISTROS = {r["capitulo"]: r for r in resultados.ler_resultados(RAIZ / "artefatos" / "resultados")}
# Um número "de resultado": decimal com vírgula (4,496) ou porcentagem (95,8% / 53 %).
NUMERO_SOLTO = re.compile(r"(?<![\w.,])\d+(?:,\d+)?\s?%|(?<![\w.,])\d+,\d+(?!\d)")
# Os capítulos cujos textos (todo .md da pasta) só citam resultados por marcas <!--r ...-->.
CAPITULOS_MEDIDOS = ("00-oficina", "01-estatistica", "02-tokens", "03-atencao", "04-gpt",
                     "05-pretreino", "06-finetuning", "07-instrucoes", "08-extras")
# Os capítulos em que também as células de markdown do notebook passam pela mesma busca: todos.
NOTEBOOKS_MEDIDOS = CAPITULOS_MEDIDOS


def test_numeros_marcados_e_tabela_conferem_com_os_resultados_gravados(capsys):
    assert resultados.main(["--check"]) == 0, capsys.readouterr().out


def test_numero_editado_a_mao_e_acusado():
    capitulo = "05-pretreino"
    certo = resultados.valor_marcado(REGISTROS, capitulo, "val_loss", "3")
    texto = f"a perda foi <!--r {capitulo} val_loss 3-->{certo}<!--/r--> nats"
    assert resultados.atualizar_numeros(texto, REGISTROS) == (texto, [])
    editado = texto.replace(certo, "1,234")
    novo, diferentes = resultados.atualizar_numeros(editado, REGISTROS)
    assert novo == texto and len(diferentes) == 1 and "1,234" in diferentes[0]


def test_formatos_e_chaves_aninhadas():
    registros = {"99-x": {"tempo_s": 12.345, "metricas": {"a": 0.5321, "b": {"c": [0.1, 2.5]}, "n": 1234567}}}
    assert resultados.valor_marcado(registros, "99-x", "a", "pct1") == "53,2%"
    assert resultados.valor_marcado(registros, "99-x", "b.c.1", "2") == "2,50"
    assert resultados.valor_marcado(registros, "99-x", "n", "0") == "1.234.567"
    assert resultados.valor_marcado(registros, "99-x", "tempo_s", "1") == "12,3"
    assert resultados.valor_marcado(registros, "99-x", "a", "e1") == "5,3e-01"
    for capitulo, chave in [("99-y", "a"), ("99-x", "b.z"), ("99-x", "b.c.7")]:
        with pytest.raises(KeyError):
            resultados.valor_marcado(registros, capitulo, chave, "2")


def _fora_das_marcas_e_do_codigo(texto: str) -> str:
    texto = re.sub(r"```.*?```", "", texto, flags=re.S)
    texto = re.sub(r"(?:(?:intervalo|IC)( de confiança)?|confiança) de 95%", "", texto)   # o nível não é resultado
    texto = re.sub(r"`[^`\n]*`", "", texto)
    return resultados.NUMERO.sub("", texto)


def _textos_medidos(capitulo: str) -> list[tuple[str, str]]:
    """(onde, texto) de cada .md do capítulo e, se ele está em NOTEBOOKS_MEDIDOS, de cada célula de markdown."""
    pasta = RAIZ / capitulo
    textos = [(str(c.relative_to(pasta)), c.read_text(encoding="utf-8")) for c in sorted(pasta.glob("**/*.md"))]
    if capitulo in NOTEBOOKS_MEDIDOS:
        celulas = json.loads((pasta / "notebook.ipynb").read_text(encoding="utf-8"))["cells"]
        textos += [(f"notebook.ipynb, célula {i}", "".join(c["source"]))
                   for i, c in enumerate(celulas) if c["cell_type"] == "markdown"]
    return textos


def test_textos_da_raiz_nao_tem_numeros_de_resultado_digitados():
    """Os .md da raiz (README, links…) também: fora das tabelas que as ferramentas geram, nenhum número solto."""
    soltos = []
    for arquivo in sorted(RAIZ.glob("*.md")):
        texto = arquivo.read_text(encoding="utf-8")
        for inicio, fim in (("<!-- resultados:inicio -->", "<!-- resultados:fim -->"),
                            ("<!-- tempos:inicio -->", "<!-- tempos:fim -->")):
            texto = re.sub(re.escape(inicio) + ".*?" + re.escape(fim), "", texto, flags=re.S)
        for n, linha in enumerate(_fora_das_marcas_e_do_codigo(texto).splitlines(), 1):
            soltos += [f"{arquivo.name}:{n}: {m.group()!r} em {linha.strip()[:90]!r}"
                       for m in NUMERO_SOLTO.finditer(linha)]
    assert not soltos, "números digitados à mão (use <!--r capítulo chave formato-->…<!--/r-->):\n" + "\n".join(soltos)


@pytest.mark.parametrize("capitulo", CAPITULOS_MEDIDOS)
def test_textos_dos_capitulos_medidos_nao_tem_numeros_de_resultado_digitados(capitulo):
    """Nos .md dos capítulos (e no markdown dos notebooks medidos), todo decimal ou porcentagem vem de uma marca."""
    soltos = []
    for onde, texto in _textos_medidos(capitulo):
        for n, linha in enumerate(_fora_das_marcas_e_do_codigo(texto).splitlines(), 1):
            soltos += [f"{onde}:{n}: {m.group()!r} em {linha.strip()[:90]!r}" for m in NUMERO_SOLTO.finditer(linha)]
    assert not soltos, "números digitados à mão (use <!--r capítulo chave formato-->…<!--/r-->):\n" + "\n".join(soltos)


def test_os_notebooks_medidos_tem_marcas_no_markdown():
    for capitulo in NOTEBOOKS_MEDIDOS:
        assert any(resultados.NUMERO.search(t) for o, t in _textos_medidos(capitulo) if o.startswith("notebook")), \
            capitulo


def _copia_do_curso(tmp_path: Path, capitulo: str) -> Path:
    """O README principal, os resultados gravados e a pasta de um capítulo, numa cópia temporária."""
    shutil.copy(RAIZ / "README.md", tmp_path / "README.md")
    shutil.copytree(RAIZ / "artefatos" / "resultados", tmp_path / "artefatos" / "resultados")
    shutil.copytree(RAIZ / capitulo, tmp_path / capitulo, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / capitulo / "notebook.ipynb"


def test_numero_editado_no_markdown_de_um_notebook_faz_o_check_falhar(tmp_path, capsys):
    notebook = _copia_do_curso(tmp_path, "03-atencao")
    original = notebook.read_text(encoding="utf-8")
    nb = json.loads(original)
    numero, celula = next((i, c) for i, c in enumerate(nb["cells"])
                          if c["cell_type"] == "markdown" and resultados.NUMERO.search("".join(c["source"])))
    marca = resultados.NUMERO.search("".join(celula["source"]))
    assert resultados.main(["--check", "--raiz", str(tmp_path)]) == 0, capsys.readouterr().out

    notebook.write_text(original.replace(marca.group(), marca.group().replace(marca["texto"], "9,99"), 1),
                        encoding="utf-8")
    assert resultados.main(["--check", "--raiz", str(tmp_path)]) == 1
    assert f"notebook.ipynb: célula {numero}:" in capsys.readouterr().out

    assert resultados.main(["--raiz", str(tmp_path)]) == 0
    assert notebook.read_text(encoding="utf-8") == original          # o preenchimento volta ao número gravado
    assert resultados.main(["--raiz", str(tmp_path)]) == 0
    assert notebook.read_text(encoding="utf-8") == original          # e preencher de novo não muda nada


def test_preencher_um_notebook_so_muda_as_marcas():
    registros = {"99-x": {"tempo_s": 1.0, "metricas": {"erro": 7.5e-08, "acc": 0.5}}}
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["erro <!--r 99-x erro e1-->?<!--/r-->\n",
                                                                         "e mais uma linha"]},
                    {"cell_type": "code", "metadata": {}, "outputs": [],
                     "source": ["# <!--r 99-x acc pct0-->?<!--/r-->"]}],
          "metadata": {"título": "ç"}, "nbformat": 4, "nbformat_minor": 5}
    texto = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    novo, diferentes = resultados.atualizar_notebook(texto, registros)
    assert len(diferentes) == 1 and diferentes[0].startswith("célula 0:")
    preenchido = json.loads(novo)
    assert preenchido["cells"][0]["source"] == ["erro <!--r 99-x erro e1-->7,5e-08<!--/r-->\n", "e mais uma linha"]
    assert preenchido["cells"][1] == nb["cells"][1]                   # código não é texto do curso
    assert resultados.atualizar_notebook(novo, registros) == (novo, [])


def test_a_busca_por_numeros_soltos_acha_o_que_deve():
    assert NUMERO_SOLTO.findall("perda 4,496 e 95,8% e 53 %") == ["4,496", "95,8%", "53 %"]
    assert NUMERO_SOLTO.findall("capítulo 05, 2 núcleos, 8.192 tokens, v0,1") == []
    marcado = "<!--r 05-pretreino val_loss 3-->4,496<!--/r-->"
    assert NUMERO_SOLTO.findall(_fora_das_marcas_e_do_codigo(f"perda {marcado} e `0,5 GB`")) == []
    assert NUMERO_SOLTO.findall(_fora_das_marcas_e_do_codigo("intervalo de 95% e 95%")) == ["95%"]
    assert NUMERO_SOLTO.findall(_fora_das_marcas_e_do_codigo("nível de confiança de 95%")) == []


def test_resultados_gravados_sao_json_com_modo_e_maquina():
    for caminho in sorted((RAIZ / "artefatos" / "resultados").glob("*.json")):
        registro = json.loads(caminho.read_text(encoding="utf-8"))
        assert registro["capitulo"] == caminho.stem
        assert {"modo", "dispositivo", "tempo_s", "metricas"} <= set(registro)
