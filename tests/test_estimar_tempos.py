"""As estimativas de tempo por capítulo (ferramentas/estimar_tempos.py): contas, tabela, frase e README."""
import sys
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
import estimar_tempos  # noqa: E402
from exportar import CAPITULOS  # noqa: E402


def test_um_passo_do_gpt2_na_t4_fica_perto_do_da_revisao():
    """GPT-2 (sem a cabeça de vocabulário) com lote 16×256: a revisão estima ~0,25 s por passo (0,18–0,35)."""
    from llm_do_zero.gpt import GPT_CONFIG_124M
    passo = estimar_tempos.treino_s(estimar_tempos.T4, GPT_CONFIG_124M, 1, 16 * 256, 256, cabeca=2)
    assert 0.18 <= passo <= 0.35


def test_modelo_pequeno_e_limitado_pelo_lancamento_de_kernels():
    pequeno = {"emb_dim": 64, "n_layers": 2, "vocab_size": 1000, "context_length": 64}
    assert estimar_tempos.treino_s(estimar_tempos.T4, pequeno, 100, 256, 64) == pytest.approx(100 * 0.011)


@pytest.fixture(scope="module")
def estimativas():
    return {cap: estimar_tempos.estimar(cap)[0] for cap in CAPITULOS}


def test_cada_capitulo_tem_estimativa_positiva_e_as_partes_somam(estimativas):
    for cap in CAPITULOS:
        total, partes = estimar_tempos.estimar(cap)
        assert total > 0 and total == pytest.approx(sum(s for _, s in partes)) and total == estimativas[cap]


def test_a_estimativa_segue_as_configuracoes(monkeypatch):
    """Menos épocas no 05 completo, menos tempo estimado: a conta lê PRETRAIN_SETTINGS, não um número fixo."""
    from llm_do_zero import pretreino
    antes = estimar_tempos.estimar("05-pretreino")[0]
    menos = {**pretreino.PRETRAIN_SETTINGS["completo"], "num_epochs": 1}
    monkeypatch.setitem(pretreino.PRETRAIN_SETTINGS, "completo", menos)
    assert estimar_tempos.estimar("05-pretreino")[0] < antes


def test_valor_no_notebook_le_a_configuracao_sem_executar():
    config = estimar_tempos.valor_no_notebook("08-extras", "CONFIG")
    assert set(config) == {"rapido", "completo"} and config["completo"]["dataset"]["fractions"][0] == 1 / 8
    with pytest.raises(LookupError, match="não tem uma célula com `NAO_EXISTE = …`"):
        estimar_tempos.valor_no_notebook("08-extras", "NAO_EXISTE")


def test_minutos_em_portugues():
    assert estimar_tempos.minutos(20) == "menos de 1 min"
    assert estimar_tempos.minutos(150) == "2,5 min" and estimar_tempos.minutos(180) == "3 min"
    assert estimar_tempos.minutos(28 * 60 + 10) == "28 min"


def test_frase_para_o_topo_do_notebook():
    frase = estimar_tempos.frase("05-pretreino")
    assert frase.startswith("No modo rápido (CPU), este capítulo leva cerca de ")
    assert "; no completo, numa T4, cerca de " in frase and frase.endswith(" min (estimativa).")
    assert "ainda não tem tempo registrado" in estimar_tempos.frase("03-atencao") or \
        (RAIZ / "artefatos" / "resultados" / "03-atencao.json").exists()


def test_tabela_tem_todos_os_capitulos_e_avisa_o_que_passa_de_12_min(estimativas):
    tabela = estimar_tempos.tabela()
    for cap in CAPITULOS:
        linha = next(linha for linha in tabela.splitlines() if linha.startswith(f"| {cap} |"))
        assert ("acima de 12 min" in linha) == (estimativas[cap] > 12 * 60)


def test_o_readme_tem_a_tabela_em_dia():
    assert estimar_tempos.main(["--check"]) == 0
