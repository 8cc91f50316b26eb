"""O guarda dos resultados (`ferramentas/conferir_resultados.py`): uma métrica que piora além da tolerância, uma
chave que some ou uma conclusão que se inverte fazem a conferência falhar; o que fica dentro da tolerância passa."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
import conferir_resultados as guarda  # noqa: E402

VERSIONADOS = RAIZ / "artefatos" / "resultados"
DECLARACAO = {"capitulo": "99-teste", "tolerancias": {"acc": 0.03, "seg": None, "lista": (0.0, 0.1)},
              "conclusoes": {"o modelo vence a régua": "acc > regua", "a lista cresce": "m('lista.1') > m('lista.0')"}}
VERSIONADA = {"acc": 0.80, "regua": 0.70, "seg": 12.0, "lista": [1.0, 2.0], "nome": "x", "exato": 3}


def test_dentro_da_tolerancia_passa_e_fora_falha_com_os_dois_valores():
    assert guarda.conferir_capitulo({**VERSIONADA, "acc": 0.78, "seg": 99.0}, VERSIONADA, DECLARACAO) == []
    problemas = guarda.conferir_capitulo({**VERSIONADA, "acc": 0.76}, VERSIONADA, DECLARACAO)
    assert len(problemas) == 1 and "acc: 0.76" in problemas[0] and "0.8" in problemas[0]
    assert guarda.conferir_capitulo({**VERSIONADA, "lista": [1.05, 2.1]}, VERSIONADA, DECLARACAO) == []
    assert guarda.conferir_capitulo({**VERSIONADA, "lista": [1.2, 2.0]}, VERSIONADA, DECLARACAO)   # relativa 10%
    assert guarda.conferir_capitulo({**VERSIONADA, "exato": 4}, VERSIONADA, DECLARACAO)           # padrão: igual
    assert guarda.conferir_capitulo({**VERSIONADA, "nome": "y"}, VERSIONADA, DECLARACAO)


def test_chave_que_falta_e_conclusao_invertida_falham():
    sem_acc = {k: v for k, v in VERSIONADA.items() if k != "acc"}
    problemas = guarda.conferir_capitulo(sem_acc, VERSIONADA, DECLARACAO)
    assert any("falta a métrica acc" in p for p in problemas)
    invertida = guarda.conferir_capitulo({**VERSIONADA, "regua": 0.81}, {**VERSIONADA, "regua": 0.81}, DECLARACAO)
    assert len(invertida) == 1 and "o modelo vence a régua" in invertida[0]


def copia_dos_versionados(tmp_path):
    pasta = tmp_path / "execucao"
    shutil.copytree(VERSIONADOS, pasta)
    return pasta


def rodar(pasta):
    return subprocess.run([sys.executable, str(RAIZ / "ferramentas" / "conferir_resultados.py"), str(pasta)],
                          capture_output=True, text=True, timeout=120)


def test_os_resultados_versionados_conferem_com_eles_mesmos_e_toda_declaracao_existe(tmp_path):
    saida = rodar(copia_dos_versionados(tmp_path))
    assert saida.returncode == 0, saida.stdout + saida.stderr
    assert set(guarda.declaracoes()) >= {p.stem for p in VERSIONADOS.glob("*.json")}


@pytest.mark.parametrize("capitulo, chave, mudanca", [("06-finetuning", "test_accuracy_limpo", -0.10),
                                                      ("05-pretreino", "val_bits_por_caractere", +0.2)])
def test_uma_metrica_treinada_perturbada_faz_o_guarda_falhar_e_dizer_qual(tmp_path, capitulo, chave, mudanca):
    pasta = copia_dos_versionados(tmp_path)
    arquivo = pasta / f"{capitulo}.json"
    registro = json.loads(arquivo.read_text(encoding="utf-8"))
    registro["metricas"][chave] += mudanca
    arquivo.write_text(json.dumps(registro), encoding="utf-8")
    saida = rodar(pasta)
    assert saida.returncode == 1 and f"{chave}:" in saida.stdout, saida.stdout


def test_capitulo_que_nao_rodou_falha(tmp_path):
    pasta = copia_dos_versionados(tmp_path)
    (pasta / "01-estatistica.json").unlink()
    saida = rodar(pasta)
    assert saida.returncode == 1 and "não gravou" in saida.stdout
