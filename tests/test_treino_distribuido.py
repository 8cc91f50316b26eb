"""Testes do treino distribuído do capítulo 08 (`08-extras/treino_distribuido.py`).

Lançam o script de verdade com o torchrun (`python -m torch.distributed.run`, o mesmo programa), em 2 processos
na CPU (backend gloo), com um treino bem curto. Os processos herdam o ambiente do pytest (modo rápido e espelho
de dados offline).
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from llm_do_zero.extras import run_torchrun

RAIZ = Path(__file__).resolve().parent.parent
SCRIPT = RAIZ / "08-extras" / "treino_distribuido.py"
CURTO = ["--passos", "8", "--lote", "4", "--contexto", "64", "--emb", "64", "--camadas", "2", "--cabecas", "4",
         "--cpu"]


def torchrun(*args: str, processos: int = 2) -> subprocess.CompletedProcess:
    comando = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processos}",
               str(SCRIPT), *args]
    return subprocess.run(comando, cwd=RAIZ, env=dict(os.environ), capture_output=True, text=True, timeout=120)


def test_ddp_mantem_pesos_iguais_e_perda_cai(tmp_path):
    resumo = tmp_path / "ddp.json"
    r = torchrun(*CURTO, "--json", str(resumo))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Pesos idênticos em todos os 2 ranks." in r.stdout
    assert r.stdout.count("passo ") == 8          # só o rank 0 imprime, uma linha por passo
    dados = json.loads(resumo.read_text(encoding="utf-8"))
    assert dados["world_size"] == 2 and dados["backend"] == "gloo" and dados["pesos_iguais"] is True
    assert len(dados["perdas"]) == 8
    assert dados["perdas"][0] > math.log(8192) - 0.5   # ≈ ln(8192) = 9,0 com pesos aleatórios (tokenizador do curso)
    assert dados["perdas"][-1] < dados["perdas"][0] - 0.8


def test_sem_sincronizar_os_pesos_divergem_e_a_verificacao_falha():
    r = torchrun(*CURTO, "--passos", "2", "--sem-sincronizar")
    assert r.returncode != 0
    assert "ERRO: os pesos são diferentes entre os ranks" in r.stdout


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
