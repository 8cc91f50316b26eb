"""Testes do treino distribuído do capítulo 08 (`08-extras/treino_distribuido.py`).

Lançam o script de verdade com o torchrun (`python -m torch.distributed.run`, o mesmo programa), em 2 processos
na CPU (backend gloo), com um treino bem curto. Os processos herdam o ambiente do pytest (modo rápido e espelho
de dados offline).

Cada treino distribuído custa alguns segundos; por isso os dois usados por mais de um teste (com DDP e sem
sincronizar) rodam uma vez só por módulo, nas fixtures abaixo.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_do_zero.extras import run_torchrun

RAIZ = Path(__file__).resolve().parent.parent
SCRIPT = RAIZ / "08-extras" / "treino_distribuido.py"
CURTO = ["--passos", "8", "--lote", "4", "--contexto", "64", "--emb", "64", "--camadas", "2", "--cabecas", "4",
         "--cpu"]


def torchrun(*args: str, processos: int = 2) -> subprocess.CompletedProcess:
    comando = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processos}",
               str(SCRIPT), *args]
    return subprocess.run(comando, cwd=RAIZ, env=dict(os.environ), capture_output=True, text=True, timeout=120)


def torchrun_com_resumo(pasta: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Roda o script com `--json` e devolve o processo e o resumo que o rank 0 gravou."""
    resumo = pasta / "resumo.json"
    r = torchrun(*args, "--json", str(resumo))
    assert resumo.exists(), r.stdout + r.stderr
    return r, json.loads(resumo.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def treino_ddp(tmp_path_factory):
    return torchrun_com_resumo(tmp_path_factory.mktemp("ddp"), *CURTO)


@pytest.fixture(scope="module")
def treino_sem_sincronizar(tmp_path_factory):
    return torchrun_com_resumo(tmp_path_factory.mktemp("sem_sincronizar"), *CURTO, "--passos", "2",
                               "--sem-sincronizar")


def test_ddp_mantem_pesos_iguais_e_perda_cai(treino_ddp):
    r, dados = treino_ddp
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Pesos idênticos em todos os 2 ranks." in r.stdout
    assert r.stdout.count("passo ") == 8          # só o rank 0 imprime, uma linha por passo
    assert dados["world_size"] == 2 and dados["backend"] == "gloo" and dados["pesos_iguais"] is True
    assert len(dados["perdas"]) == 8
    assert dados["perdas"][0] > math.log(8192) - 0.5   # ≈ ln(8192) = 9,0 com pesos aleatórios (tokenizador do curso)
    assert dados["perdas"][-1] < dados["perdas"][0] - 0.8


def test_ddp_da_os_mesmos_pesos_que_um_processo_com_lote_dobrado(treino_ddp):
    """2 ranks com lote 4 = 1 processo com lote 8 (as mesmas janelas): só sobra o arredondamento do float32."""
    r, dados = treino_ddp
    assert r.returncode == 0, r.stdout + r.stderr
    assert dados["igual_processo_unico"] is True
    assert dados["tolerancia_processo_unico"] == pytest.approx(0.2 * 3e-3)   # FRACAO_TOLERANCIA × lr padrão
    # medido: ~3e-6 a 5e-5 (8 a 20 passos, várias sementes); o teste exige bem menos que um passo do AdamW (lr)
    assert 0 <= dados["diferenca_processo_unico"] <= dados["tolerancia_processo_unico"]
    assert "Pesos do DDP iguais aos de 1 processo com lote 8" in r.stdout


def test_sem_sincronizar_os_pesos_divergem_e_a_verificacao_falha(treino_sem_sincronizar):
    r, dados = treino_sem_sincronizar
    assert r.returncode == 1
    assert "ERRO: os pesos são diferentes entre os ranks" in r.stdout
    assert dados["ddp"] is False and dados["pesos_iguais"] is False


def test_sem_sincronizar_a_comparacao_com_um_processo_falha(treino_sem_sincronizar):
    """A comparação com o processo único também acusa: cada rank andou só com a sua metade dos lotes."""
    r, dados = treino_sem_sincronizar
    assert dados["igual_processo_unico"] is False
    # sem a média dos gradientes, os passos do AdamW (±lr) já discordam: ~2 × lr, 10 vezes a tolerância ou mais
    assert dados["diferenca_processo_unico"] > 10 * dados["tolerancia_processo_unico"]
    assert "ERRO: os pesos do rank 0 diferem do treino em 1 processo com lote 8" in r.stdout


def test_sem_torchrun_explica_como_lancar():
    ambiente = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    r = subprocess.run([sys.executable, str(SCRIPT)], cwd=RAIZ, env=ambiente, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert "precisa ser lançado pelo torchrun" in r.stderr
    assert "torchrun --standalone --nproc_per_node=2" in r.stderr


def test_run_torchrun_desliga_a_libuv_so_no_windows(monkeypatch):
    """O PyTorch do Windows vem sem libuv, e o torchrun só sobe lá com USE_LIBUV=0 (a plataforma é simulada)."""
    chamadas = []

    def run_falso(comando, **opcoes):
        chamadas.append((comando, opcoes))
        return subprocess.CompletedProcess(comando, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run_falso)
    monkeypatch.delenv("USE_LIBUV", raising=False)
    for plataforma, esperado in (("win32", "0"), ("linux", None), ("darwin", None)):
        monkeypatch.setattr(sys, "platform", plataforma)
        assert run_torchrun("treino.py", ["--passos", "1"], nproc=3).returncode == 0
        comando, opcoes = chamadas[-1]
        assert comando[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--nproc_per_node=3" in comando
        assert comando[-3:] == ["treino.py", "--passos", "1"] and opcoes["capture_output"] and opcoes["text"]
        assert opcoes["env"].get("USE_LIBUV") == esperado
    assert "USE_LIBUV" not in os.environ
