"""Os números dos textos do curso vêm dos resultados gravados (ferramentas/resultados.py)."""
import json
import re
import sys
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
import resultados  # noqa: E402

REGISTROS = {r["capitulo"]: r for r in resultados.ler_resultados(RAIZ / "artefatos" / "resultados")}
# Um número "de resultado": decimal com vírgula (4,496) ou porcentagem (95,8% / 53 %).
NUMERO_SOLTO = re.compile(r"(?<![\w.,])\d+(?:,\d+)?\s?%|(?<![\w.,])\d+,\d+(?!\d)")
CAPITULOS_MEDIDOS = ("05-pretreino", "06-finetuning", "07-instrucoes", "08-extras")


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
    for capitulo, chave in [("99-y", "a"), ("99-x", "b.z"), ("99-x", "b.c.7")]:
        with pytest.raises(KeyError):
            resultados.valor_marcado(registros, capitulo, chave, "2")


def _fora_das_marcas_e_do_codigo(texto: str) -> str:
    texto = re.sub(r"```.*?```", "", texto, flags=re.S)
    texto = re.sub(r"(?:intervalo|IC)( de confiança)? de 95%", "", texto)   # o nível de confiança não é resultado
    texto = re.sub(r"`[^`\n]*`", "", texto)
    return resultados.NUMERO.sub("", texto)


@pytest.mark.parametrize("capitulo", CAPITULOS_MEDIDOS)
def test_textos_dos_capitulos_medidos_nao_tem_numeros_de_resultado_digitados(capitulo):
    """Nos READMEs e diários de 05–08, todo decimal ou porcentagem vem de uma marca <!--r ...-->."""
    soltos = []
    for caminho in [RAIZ / capitulo / "README.md", RAIZ / capitulo / "diario.md"]:
        for n, linha in enumerate(_fora_das_marcas_e_do_codigo(caminho.read_text(encoding="utf-8")).splitlines(), 1):
            soltos += [f"{caminho.name}:{n}: {m.group()!r} em {linha.strip()[:90]!r}"
                       for m in NUMERO_SOLTO.finditer(linha)]
    assert not soltos, "números digitados à mão (use <!--r capítulo chave formato-->…<!--/r-->):\n" + "\n".join(soltos)


def test_a_busca_por_numeros_soltos_acha_o_que_deve():
    assert NUMERO_SOLTO.findall("perda 4,496 e 95,8% e 53 %") == ["4,496", "95,8%", "53 %"]
    assert NUMERO_SOLTO.findall("capítulo 05, 2 núcleos, 8.192 tokens, v0,1") == []
    marcado = "<!--r 05-pretreino val_loss 3-->4,496<!--/r-->"
    assert NUMERO_SOLTO.findall(_fora_das_marcas_e_do_codigo(f"perda {marcado} e `0,5 GB`")) == []
    assert NUMERO_SOLTO.findall(_fora_das_marcas_e_do_codigo("intervalo de 95% e 95%")) == ["95%"]


def test_resultados_gravados_sao_json_com_modo_e_maquina():
    for caminho in sorted((RAIZ / "artefatos" / "resultados").glob("*.json")):
        registro = json.loads(caminho.read_text(encoding="utf-8"))
        assert registro["capitulo"] == caminho.stem
        assert {"modo", "dispositivo", "tempo_s", "metricas"} <= set(registro)
