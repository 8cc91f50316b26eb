"""Os laços de treino dos capítulos 05–07 usam a precisão mista que `amp_settings` (capítulo 00) escolhe.

Os três passam pelo `train_loop` do capítulo 05, então basta trocar o `amp_settings` que ele vê.

Sem GPU aqui, simulamos a escolha de uma GPU Ampere (autocast em bfloat16, sem GradScaler), que também funciona
na CPU: a camada de saída tem de produzir bfloat16 durante o treino e float32 quando `amp_settings` diz que não.
"""
import pytest
import torch

from llm_do_zero import finetuning, instrucoes, pretreino
from llm_do_zero.finetuning import add_classification_head, embedding_bag_device
from llm_do_zero.gpt import GPTModel
from llm_do_zero.tokens import course_tokenizer

MINI = {"vocab_size": 8192, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
        "drop_rate": 0.0, "qkv_bias": False}


def treinar_05(modelo):
    lotes = [(torch.randint(0, 8192, (2, 8)), torch.randint(0, 8192, (2, 8)))]
    pretreino.train_model_simple(modelo, lotes, lotes, torch.optim.AdamW(modelo.parameters()), "cpu", num_epochs=1,
                                 eval_freq=10, eval_iter=1, start_context="a", tokenizer=course_tokenizer(),
                                 max_steps=1, grad_clip=1.0)


def treinar_06(modelo):
    lotes = [(torch.randint(0, 8191, (2, 8)), torch.tensor([0, 1]))]
    finetuning.train_classifier_simple(modelo, lotes, lotes, torch.optim.AdamW(modelo.parameters()), "cpu",
                                       num_epochs=1, eval_freq=10, eval_iter=1, pad_token_id=8191)


def treinar_07(modelo):
    alvos = torch.randint(0, 8192, (2, 8))
    alvos[:, :4] = -100                                      # a parte da instrução não entra na perda
    lotes = [(torch.randint(0, 8192, (2, 8)), alvos)]
    instrucoes.train_instruction_model(modelo, lotes, lotes, torch.optim.AdamW(modelo.parameters()), "cpu",
                                       num_epochs=1, eval_freq=10, eval_iter=1, sample_entries=[],
                                       tokenizer=course_tokenizer(), grad_clip=1.0)


LACOS = {"05": treinar_05, "06": treinar_06, "07": treinar_07}
ESCOLHAS = {"gpu-ampere": ((torch.bfloat16, False), torch.bfloat16), "cpu": ((None, False), torch.float32)}


@pytest.mark.parametrize("capitulo", LACOS)
@pytest.mark.parametrize("maquina", ESCOLHAS)
def test_laco_de_treino_usa_o_autocast_de_amp_settings(monkeypatch, capsys, capitulo, maquina):
    treinar = LACOS[capitulo]
    escolha, esperado = ESCOLHAS[maquina]
    monkeypatch.setattr(pretreino, "amp_settings", lambda device: escolha)
    torch.manual_seed(0)
    modelo = GPTModel(MINI)
    if capitulo == "06":
        modelo = add_classification_head(modelo)
    tipos = []                                               # o tipo da saída da cabeça em cada passo de treino
    modelo.out_head.register_forward_hook(lambda m, entrada, saida: tipos.append(saida.dtype) if m.training else None)
    treinar(modelo)
    capsys.readouterr()
    assert tipos and set(tipos) == {esperado}
    assert all(p.dtype == torch.float32 for p in modelo.parameters())    # os pesos continuam em float32


@pytest.mark.parametrize("device, versao, esperado", [("mps", "2.9.1", "cpu"), ("mps", "2.10.0", "mps"),
                                                      ("mps", "2.13.0+cpu", "mps"), ("cpu", "2.4.0", "cpu"),
                                                      ("cuda", "2.4.0", "cuda")])
def test_saco_de_tokens_sai_da_gpu_da_apple_quando_falta_o_embedding_bag(device, versao, esperado):
    assert embedding_bag_device(device, versao).type == esperado


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
def test_sem_precisao_mista_o_autocast_nem_e_criado(monkeypatch, device):
    """O torch 2.4 recusa `torch.autocast("mps", ...)` mesmo desligado: sem tipo, o laço não pode criá-lo."""
    def autocast_que_recusa(device_type, *args, **kwargs):
        raise RuntimeError(f"autocast não disponível para {device_type}")

    monkeypatch.setattr(torch, "autocast", autocast_que_recusa)
    with pretreino.autocast_context(device, None):
        pass
    with pytest.raises(RuntimeError, match=device):
        pretreino.autocast_context(device, torch.bfloat16)


def test_laco_de_treino_sem_precisao_mista_nao_chama_o_autocast(monkeypatch, capsys):
    """O laço inteiro, sem precisão mista (CPU, ou a GPU da Apple), com um autocast que recusa qualquer chamada."""
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("mps")))
    torch.manual_seed(0)
    modelo = GPTModel(MINI)
    treinar_05(modelo)
    capsys.readouterr()


def avaliar_05(modelo):
    lotes = [(torch.randint(0, 8192, (2, 8)), torch.randint(0, 8192, (2, 8)))]
    assert pretreino.calc_loss_loader(lotes, modelo, "cpu") > 0


def avaliar_06(modelo):
    lotes = [(torch.randint(0, 8191, (2, 8)), torch.tensor([0, 1]))]
    assert 0 <= finetuning.calc_accuracy_loader(lotes, modelo, "cpu", pad_token_id=8191) <= 1


def avaliar_07(modelo):
    entrada = {"instrucao": "Qual é a capital da Bahia?", "entrada": ""}
    assert isinstance(instrucoes.generate_response(modelo, entrada, course_tokenizer(), preambulo=False,
                                                   max_new_tokens=2, device="cpu"), str)


AVALIACOES = {"05": (avaliar_05, pretreino), "06": (avaliar_06, finetuning), "07": (avaliar_07, instrucoes)}


@pytest.mark.parametrize("capitulo", AVALIACOES)
@pytest.mark.parametrize("maquina", ESCOLHAS)
def test_avaliacao_e_geracao_usam_a_precisao_mista_do_treino(monkeypatch, capitulo, maquina):
    """Na GPU, avaliar e gerar também rodam sob o autocast (em float32 puro, a avaliação do modo completo numa T4
    custaria mais que o próprio treino); na CPU, nada muda."""
    avaliar, modulo = AVALIACOES[capitulo]
    escolha, esperado = ESCOLHAS[maquina]
    monkeypatch.setattr(modulo, "amp_settings", lambda device: escolha)
    torch.manual_seed(0)
    modelo = GPTModel(MINI)
    if capitulo == "06":
        modelo = add_classification_head(modelo)
    modelo.eval()
    tipos = []
    modelo.out_head.register_forward_hook(lambda m, entrada, saida: tipos.append(saida.dtype))
    avaliar(modelo)
    assert tipos and set(tipos) == {esperado}
