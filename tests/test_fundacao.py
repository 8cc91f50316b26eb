"""Testes da fundação do curso: modos, download com cache/espelho/verificação, resultados e a barra de progresso."""
import hashlib
import time
from pathlib import Path

import pytest
import torch

from llm_do_zero import oficina
from llm_do_zero.oficina import (
    DATA_FILES, download_file, DownloadError, get_data_file, get_mode, save_results, set_seed,
)

RAIZ = Path(__file__).resolve().parent.parent

URL_INALCANCAVEL = "http://127.0.0.1:9/arquivo.txt"  # porta 9 (discard): conexão recusada na hora


def _sha(conteudo: bytes) -> str:
    return hashlib.sha256(conteudo).hexdigest()


@pytest.fixture
def espelho(tmp_path, monkeypatch):
    """Uma pasta de espelho com um arquivo, e um cache vazio."""
    pasta = tmp_path / "espelho"
    pasta.mkdir()
    (pasta / "livro.txt").write_bytes("Capitu tinha olhos de ressaca.".encode())
    monkeypatch.setenv("LLM_DADOS_ESPELHO", str(pasta))
    monkeypatch.setenv("LLM_CACHE_DIR", str(tmp_path / "cache"))
    return pasta


# ---------------------------------------------------------------- modos

@pytest.mark.parametrize("valor, esperado", [("rapido", "rapido"), ("completo", "completo"),
                                             ("RÁPIDO", "rapido"), ("  Completo ", "completo")])
def test_modo_lido_da_variavel(monkeypatch, valor, esperado):
    monkeypatch.setenv("LLM_MODO", valor)
    assert get_mode() == esperado


def _gpu_de(monkeypatch, gigabytes: float) -> None:
    """Simula uma GPU CUDA com tanta memória."""
    import types

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda _i=0: types.SimpleNamespace(total_memory=int(gigabytes * 2**30)))


def test_modo_padrao_depende_da_gpu(monkeypatch):
    import torch

    monkeypatch.delenv("LLM_MODO", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_mode() == "rapido"
    _gpu_de(monkeypatch, 14.7)                                  # uma T4 do Colab
    assert get_mode() == "completo"


@pytest.mark.parametrize("variavel", [None, "completo"])
def test_gpu_pequena_recusa_o_completo_com_aviso_uma_vez(monkeypatch, capsys, variavel):
    if variavel is None:
        monkeypatch.delenv("LLM_MODO", raising=False)
    else:
        monkeypatch.setenv("LLM_MODO", variavel)
    monkeypatch.setattr(oficina, "_avisos_dados", set())
    _gpu_de(monkeypatch, 7.8)
    assert get_mode() == "rapido" and get_mode() == "rapido"
    saida = capsys.readouterr().out
    assert saida.count("modo completo precisa de pelo menos") == 1 and "7.8 GB" in saida


def test_modo_invalido_explica_as_opcoes(monkeypatch):
    monkeypatch.setenv("LLM_MODO", "turbo")
    with pytest.raises(ValueError, match=r"'turbo'.*rapido, completo"):
        get_mode()


def test_conftest_poe_modo_rapido_sem_sobrescrever_o_usuario(monkeypatch):
    import os
    import runpy

    monkeypatch.delenv("LLM_MODO", raising=False)
    monkeypatch.setenv("LLM_DADOS_ESPELHO", "../shared/dados")
    runpy.run_path(str(RAIZ / "conftest.py"))
    assert os.environ["LLM_MODO"] == "rapido"
    assert Path(os.environ["LLM_DADOS_ESPELHO"]).is_absolute()
    monkeypatch.setenv("LLM_MODO", "completo")
    runpy.run_path(str(RAIZ / "conftest.py"))
    assert os.environ["LLM_MODO"] == "completo"


def test_semente_reproduz_numeros():
    import torch

    set_seed(7)
    a = torch.rand(5)
    set_seed(7)
    assert torch.equal(a, torch.rand(5))


# ---------------------------------------------------------------- downloads

def test_espelho_e_usado_e_verificado(espelho, tmp_path):
    conteudo = (espelho / "livro.txt").read_bytes()
    destino = tmp_path / "cache" / "livro.txt"
    caminho = download_file(URL_INALCANCAVEL, destino, sha256=_sha(conteudo), mirror_name="livro.txt", quiet=True)
    assert caminho == destino and destino.read_bytes() == conteudo
    assert not destino.with_name("livro.txt.part").exists()


def test_arquivo_em_cache_nao_e_buscado_de_novo(espelho, tmp_path, monkeypatch):
    conteudo = (espelho / "livro.txt").read_bytes()
    destino = tmp_path / "cache" / "livro.txt"
    download_file(URL_INALCANCAVEL, destino, sha256=_sha(conteudo), mirror_name="livro.txt", quiet=True)
    monkeypatch.delenv("LLM_DADOS_ESPELHO")
    # Sem espelho e com URL inalcançável: só funciona se o cache for reaproveitado.
    assert download_file(URL_INALCANCAVEL, destino, sha256=_sha(conteudo), quiet=True).read_bytes() == conteudo


def test_cache_corrompido_e_substituido(espelho, tmp_path):
    conteudo = (espelho / "livro.txt").read_bytes()
    destino = tmp_path / "cache" / "livro.txt"
    destino.parent.mkdir(parents=True)
    destino.write_bytes(b"lixo")
    download_file(URL_INALCANCAVEL, destino, sha256=_sha(conteudo), mirror_name="livro.txt", quiet=True)
    assert destino.read_bytes() == conteudo


def test_sha256_errado_da_erro_claro_e_nao_deixa_arquivo(espelho, tmp_path):
    destino = tmp_path / "cache" / "livro.txt"
    with pytest.raises(DownloadError, match="SHA-256") as erro:
        download_file(URL_INALCANCAVEL, destino, sha256="0" * 64, mirror_name="livro.txt", quiet=True)
    assert "corrompido" in str(erro.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_validacao_de_conteudo_recusa_arquivo(espelho, tmp_path):
    def exige_machado(caminho: Path) -> None:
        if "Machado" not in caminho.read_text(encoding="utf-8"):
            raise ValueError("não parece um texto de Machado")

    with pytest.raises(DownloadError, match="não parece um texto de Machado"):
        download_file(URL_INALCANCAVEL, tmp_path / "cache" / "livro.txt", mirror_name="livro.txt",
                      validate=exige_machado, quiet=True)
    assert list((tmp_path / "cache").iterdir()) == []


def test_url_inalcancavel_falha_rapido_com_instrucoes(tmp_path, monkeypatch):
    monkeypatch.delenv("LLM_DADOS_ESPELHO", raising=False)
    destino = tmp_path / "cache" / "livro.txt"
    inicio = time.perf_counter()
    with pytest.raises(DownloadError) as erro:
        download_file(URL_INALCANCAVEL, destino, timeout=5, quiet=True)
    assert time.perf_counter() - inicio < 10
    mensagem = str(erro.value)
    assert URL_INALCANCAVEL in mensagem and "Não consegui baixar" in mensagem
    assert "LLM_DADOS_ESPELHO" in mensagem and "coloque-o em" in mensagem
    assert not destino.exists() and not destino.with_name("livro.txt.part").exists()


def test_download_http_real_em_servidor_local(tmp_path, monkeypatch):
    """Baixa de um servidor HTTP local (sem internet): o caminho de rede grava, verifica e renomeia."""
    import functools
    import http.server
    import threading

    monkeypatch.delenv("LLM_DADOS_ESPELHO", raising=False)
    servidos = tmp_path / "servidos"
    servidos.mkdir()
    conteudo = "Ao vencedor, as batatas!".encode() * 1000
    (servidos / "quincas.txt").write_bytes(conteudo)
    manipulador = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(servidos))
    manipulador.log_message = lambda *args: None
    servidor = http.server.ThreadingHTTPServer(("127.0.0.1", 0), manipulador)
    threading.Thread(target=servidor.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{servidor.server_address[1]}/quincas.txt"
        destino = tmp_path / "cache" / "quincas.txt"
        assert download_file(url, destino, sha256=_sha(conteudo), quiet=True).read_bytes() == conteudo
        with pytest.raises(DownloadError, match="SHA-256"):
            download_file(url, tmp_path / "cache" / "outro.txt", sha256="f" * 64, quiet=True)
        assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["quincas.txt"]
    finally:
        servidor.shutdown()


def test_registro_de_dados_bate_com_o_espelho(monkeypatch, tmp_path):
    """Todo arquivo com SHA-256 no registro confere com a cópia do espelho (quando o espelho existe)."""
    import os

    pasta = os.environ.get("LLM_DADOS_ESPELHO")
    if not pasta or not Path(pasta).is_dir():
        pytest.skip("sem espelho local de dados (LLM_DADOS_ESPELHO)")
    monkeypatch.setenv("LLM_CACHE_DIR", str(tmp_path))
    assert len([n for n in DATA_FILES if n.startswith("machado/")]) == 17
    for nome, info in DATA_FILES.items():
        if info["sha256"] is not None:
            assert get_data_file(nome, quiet=True).stat().st_size > 1000, nome


def test_nome_fora_do_registro(monkeypatch):
    with pytest.raises(KeyError, match="não está no registro"):
        get_data_file("machado/inexistente.txt")


def test_resultados_gravados_com_modo_e_maquina(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("LLM_ARTEFATOS", str(tmp_path))
    monkeypatch.setenv("LLM_MODO", "rapido")
    caminho = save_results("99-teste", {"acuracia": 0.5}, tempo_s=1.23)
    registro = json.loads(caminho.read_text(encoding="utf-8"))
    assert caminho == tmp_path / "resultados" / "99-teste.json"
    assert registro["modo"] == "rapido" and registro["metricas"] == {"acuracia": 0.5}
    assert registro["tempo_s"] == 1.2 and registro["dispositivo"]


# ---------------------------------------------------------------- teste de fumaça (LLM_FUMACA)

CONFIG_EXEMPLO = {
    "rapido": {"steps": 96, "seeds": [1, 2, 3]},
    "completo": {"modelo": {"emb_dim": 768, "n_layers": 12}, "max_steps": None, "num_epochs": 4, "eval_iter": 20,
                 "eval_texts": None, "batch_size": 16, "lr": 5e-5, "seeds": (1, 2, 3), "usar_gpu": True,
                 "dpo": {"steps": 100, "pairs_per_task": 40}},
}


def test_sem_fumaca_as_configuracoes_do_modo_sao_as_mesmas(monkeypatch):
    monkeypatch.delenv("LLM_FUMACA", raising=False)
    monkeypatch.setenv("LLM_MODO", "completo")
    assert oficina.mode_settings(CONFIG_EXEMPLO) is CONFIG_EXEMPLO["completo"]
    assert oficina.mode_settings(CONFIG_EXEMPLO, "rapido") is CONFIG_EXEMPLO["rapido"]


def test_fumaca_encolhe_passos_dados_e_avaliacoes_e_mantem_o_resto(monkeypatch, capsys):
    monkeypatch.setenv("LLM_FUMACA", "1")
    monkeypatch.setenv("LLM_MODO", "completo")
    limites = oficina.SMOKE_LIMITS
    cfg = oficina.mode_settings(CONFIG_EXEMPLO)
    assert cfg["max_steps"] == limites["max_steps"]                      # None ("tudo") vira o limite
    assert cfg["num_epochs"] == 1 and cfg["eval_iter"] == limites["eval_iter"]
    assert cfg["eval_texts"] == limites["eval_texts"] and cfg["batch_size"] == limites["batch_size"]
    assert cfg["dpo"] == {"steps": limites["steps"], "pairs_per_task": limites["pairs_per_task"]}   # em qualquer nível
    assert cfg["seeds"] == (1, 2)                                        # duas sementes, no mesmo tipo
    assert cfg["modelo"] == {"emb_dim": 768, "n_layers": 12}             # o tamanho do modelo é o do modo
    assert cfg["lr"] == 5e-5 and cfg["usar_gpu"] is True
    assert CONFIG_EXEMPLO["completo"]["max_steps"] is None               # o original não muda
    assert "LLM_FUMACA=1" in capsys.readouterr().out


def test_fumaca_nunca_aumenta_um_valor(monkeypatch):
    monkeypatch.setenv("LLM_FUMACA", "1")
    assert oficina.mode_settings({"rapido": {"steps": 1, "eval_texts": 3}}, "rapido") == {"steps": 1, "eval_texts": 3}


def test_fumaca_grava_a_marca_nos_resultados(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("LLM_ARTEFATOS", str(tmp_path))
    monkeypatch.setenv("LLM_FUMACA", "1")
    registro = json.loads(save_results("99-teste", {"acuracia": 0.5}, tempo_s=1.0).read_text(encoding="utf-8"))
    assert registro["fumaca"] is True
    monkeypatch.delenv("LLM_FUMACA")
    registro = json.loads(save_results("99-teste", {"acuracia": 0.5}, tempo_s=1.0).read_text(encoding="utf-8"))
    assert "fumaca" not in registro


def test_notebooks_leem_a_configuracao_do_modo_por_mode_settings():
    """Um `cfg = CONFIG[modo]` escaparia do teste de fumaça: toda configuração de modo passa por mode_settings."""
    import json
    import re

    direto = re.compile(r"^\s*cfg\w*\s*=\s*[A-Z_]+\[", re.MULTILINE)
    for caminho in sorted(RAIZ.glob("0*-*/notebook.ipynb")):
        celulas = json.loads(caminho.read_text(encoding="utf-8"))["cells"]
        for celula in celulas:
            fonte = "".join(celula["source"])
            assert not direto.search(fonte), f"{caminho.parent.name}: {direto.search(fonte).group(0).strip()}"


# ---------------------------------------------------------------- barra de progresso

def _redesenhos(barra_de_teste) -> int:
    return barra_de_teste.getvalue().count("\r")


def test_barra_do_curso_manda_poucas_mensagens_mesmo_com_postfix_a_cada_passo():
    """Um laço de ~1 s com set_postfix a cada passo: a barra do curso se redesenha só no início e no fim.

    A mesma conta com a tqdm comum (mininterval de 0,1 s e set_postfix que força o redesenho) dá dezenas de
    mensagens: é isso que entope o Jupyter num treino de minutos.
    """
    import io

    from tqdm.std import tqdm

    from llm_do_zero.oficina import progress_bar

    def laco(barra):
        fim = time.perf_counter() + 1.0
        while time.perf_counter() < fim:
            time.sleep(0.005)
            barra.update(1)
            barra.set_postfix(perda=f"{time.perf_counter():.3f}")
        barra.close()

    nossa, comum = io.StringIO(), io.StringIO()
    laco(progress_bar(total=10_000, desc="curso", file=nossa))
    laco(tqdm(total=10_000, desc="comum", file=comum, mininterval=0.1))
    assert _redesenhos(nossa) <= 3, nossa.getvalue()
    assert _redesenhos(comum) >= 20
    assert "curso" in nossa.getvalue() and "\n" not in nossa.getvalue().rstrip("\n")


def test_barra_do_curso_e_texto_e_aceita_iteravel():
    import io

    from llm_do_zero.oficina import progress_bar

    saida = io.StringIO()
    assert list(progress_bar(range(3), desc="itens", file=saida)) == [0, 1, 2]
    assert "3/3" in saida.getvalue()
    assert type(progress_bar(total=1, file=saida)).__module__ == "llm_do_zero.oficina"


# ---------------------------------------------------------------- o treino por dentro (capítulo 00, seção 5)

def _entropia_cruzada_a_mao(logits, alvos):
    """A fórmula do notebook: -log_softmax na classe certa, em média sobre as linhas."""
    import torch

    log_probs = torch.log_softmax(logits, dim=-1)
    return -log_probs[torch.arange(len(alvos)), alvos].mean()


@pytest.mark.parametrize("linhas, classes, escala", [(8, 5, 1.0), (32, 2, 3.0), (12, 50_257, 1.0), (6, 4, 200.0)])
def test_entropia_cruzada_a_mao_igual_a_do_torch(linhas, classes, escala):
    """Logits aleatórios (inclusive enormes, em que log(softmax) ingênuo daria -inf): a conta à mão bate com o torch."""
    import torch
    import torch.nn.functional as F

    gerador = torch.Generator().manual_seed(linhas * classes)
    logits = escala * torch.randn(linhas, classes, generator=gerador)
    alvos = torch.randint(classes, (linhas,), generator=gerador)
    a_mao = _entropia_cruzada_a_mao(logits, alvos)
    assert torch.isfinite(a_mao)
    torch.testing.assert_close(a_mao, F.cross_entropy(logits, alvos))
    # e a definição por extenso, em float64: média de log(soma de exp) - logit da classe certa
    z = logits.double()
    por_extenso = (torch.logsumexp(z, dim=-1) - z[torch.arange(linhas), alvos]).mean()
    torch.testing.assert_close(a_mao.double(), por_extenso, rtol=1e-5, atol=1e-5)


def test_entropia_cruzada_de_logits_iguais_e_log_do_numero_de_classes():
    import math

    import torch

    for classes in (2, 50_257):
        valor = _entropia_cruzada_a_mao(torch.zeros(3, classes), torch.tensor([0, 1, classes - 1])).item()
        assert valor == pytest.approx(math.log(classes), rel=1e-6)


def _rede_e_lote():
    import torch
    from torch import nn

    gerador = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    rede = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    return rede, torch.randn(32, 2, generator=gerador), torch.randint(3, (32,), generator=gerador)


def test_passo_de_gradiente_a_mao_igual_ao_do_sgd():
    import copy

    import torch
    import torch.nn.functional as F

    rede, X, y = _rede_e_lote()
    a_mao, pelo_sgd = copy.deepcopy(rede), copy.deepcopy(rede)
    lr = 0.1
    F.cross_entropy(a_mao(X), y).backward()
    with torch.no_grad():
        for peso in a_mao.parameters():
            peso -= lr * peso.grad
    otimizador = torch.optim.SGD(pelo_sgd.parameters(), lr=lr)
    F.cross_entropy(pelo_sgd(X), y).backward()
    otimizador.step()
    for antes, depois_mao, depois_sgd in zip(rede.parameters(), a_mao.parameters(), pelo_sgd.parameters()):
        torch.testing.assert_close(depois_mao, depois_sgd)
        assert not torch.equal(depois_mao, antes)  # o passo mexeu nos pesos


def test_backward_soma_em_grad_e_acumular_metades_da_o_gradiente_do_lote():
    import copy

    import torch
    import torch.nn.functional as F

    rede, X, y = _rede_e_lote()
    dobro, lote, metades = copy.deepcopy(rede), copy.deepcopy(rede), copy.deepcopy(rede)
    F.cross_entropy(lote(X), y).backward()
    for _ in range(2):
        F.cross_entropy(dobro(X), y).backward()
    for parte in (slice(0, 16), slice(16, 32)):
        (F.cross_entropy(metades(X[parte]), y[parte]) / 2).backward()
    for p_lote, p_dobro, p_metades in zip(lote.parameters(), dobro.parameters(), metades.parameters()):
        torch.testing.assert_close(p_dobro.grad, 2 * p_lote.grad)
        torch.testing.assert_close(p_metades.grad, p_lote.grad)
    dobro.zero_grad()
    assert all(p.grad is None for p in dobro.parameters())


def test_eval_desliga_o_dropout_e_no_grad_nao_guarda_o_grafo():
    import torch
    from torch import nn

    torch.manual_seed(0)
    rede = nn.Sequential(nn.Linear(4, 64), nn.Dropout(p=0.5))
    x = torch.randn(10, 4)
    rede.train()
    saida_treino = rede(x)
    zerados = (saida_treino == 0).float().mean().item()
    assert 0.3 < zerados < 0.7  # em treino, cerca de metade zerada
    rede.eval()
    saida_eval = rede(x)
    torch.testing.assert_close(saida_eval, rede[0](x))  # em avaliação, o dropout é a identidade
    assert saida_eval.grad_fn is not None  # eval() não desliga o grafo
    with torch.no_grad():
        assert rede(x).grad_fn is None and not rede(x).requires_grad
    rede.train()
    with torch.no_grad():
        assert (rede(x) == 0).any()  # no_grad não desliga o dropout


@pytest.mark.parametrize("capacidade, esperado", [((7, 5), (torch.float16, True)),      # T4
                                                  ((8, 0), (torch.bfloat16, False)),    # A100
                                                  ((9, 0), (torch.bfloat16, False))])   # H100
def test_precisao_mista_por_gpu(monkeypatch, capacidade, esperado):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _d=None: capacidade)
    assert oficina.amp_settings("cuda") == esperado


def test_sem_precisao_mista_fora_da_cuda():
    assert oficina.amp_settings("cpu") == (None, False) and oficina.amp_settings("mps") == (None, False)
    assert oficina.gpu_peak_memory("cpu") == ""


@pytest.mark.parametrize("dispositivo, esperado", [("cuda", ["cuda"]), ("mps", ["mps"]), ("cpu", [])])
def test_synchronize_espera_a_gpu_certa(monkeypatch, dispositivo, esperado):
    chamadas = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda _d=None: chamadas.append("cuda"))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: chamadas.append("mps"))
    oficina.synchronize(dispositivo)
    assert chamadas == esperado


@pytest.mark.parametrize("dispositivo, esvazia", [("cuda", True), ("cpu", False), ("mps", False)])
def test_free_gpu_memory_recolhe_e_esvazia_o_cache_da_cuda(monkeypatch, dispositivo, esvazia):
    chamadas = []
    monkeypatch.setattr(oficina.gc, "collect", lambda: chamadas.append("gc") or 0)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: chamadas.append("cache"))
    oficina.free_gpu_memory(dispositivo)
    assert chamadas == (["gc", "cache"] if esvazia else ["gc"])
