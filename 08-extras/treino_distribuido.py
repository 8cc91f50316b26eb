"""Treino distribuído com paralelismo de dados (data parallelism): o mesmo GPT em vários processos.

Cada processo (um *rank*) guarda uma cópia inteira do modelo e recebe uma fatia diferente dos dados
(`DistributedSampler`). Depois de cada `backward()`, o `DistributedDataParallel` (DDP) tira a média dos
gradientes entre todos os processos (uma operação *all-reduce*); como todos partem dos mesmos pesos e aplicam
o mesmo gradiente médio, os pesos continuam idênticos em todos os ranks — e o script confere isso no fim.

Com N processos e lote `--lote` por processo, um passo vê N × lote janelas: é o mesmo que treinar em um só
processo com um lote N vezes maior, só que o trabalho fica dividido. O script confere isso também: no fim, o
rank 0 recebe os lotes que cada rank usou em cada passo, treina do zero (mesma semente) uma cópia do modelo em
um só processo, com lotes que são a união deles, e compara os pesos com os do DDP. A equivalência
vale porque todas as janelas têm o mesmo número de tokens (a média da perda no lote grande é a média das
médias dos lotes pequenos) e porque o dropout é 0 (senão cada processo sortearia máscaras diferentes).

A igualdade não é bit a bit: o DDP soma os gradientes em outra ordem, e o float32 arredonda diferente. Quase
todos os pesos ficam a menos de 1e-6, mas o AdamW divide cada gradiente pela sua própria média quadrática, e
nos raros pesos cujo gradiente é quase zero esse arredondamento vira um passo um pouco diferente: medimos até
~8e-5 (com lr 0,003, de 2 a 100 passos). Por isso a tolerância é uma fração da taxa de aprendizado
(`FRACAO_TOLERANCIA` × lr = 6e-4 no padrão); sem sincronizar, cada passo já separa os pesos em ~2 × lr.

Como rodar (da pasta 08-extras ou da raiz do repositório):

    torchrun --standalone --nproc_per_node=2 08-extras/treino_distribuido.py --passos 20

- Em CPU, os processos conversam pelo backend `gloo`; em GPUs (uma por processo), pelo `nccl`.
- `--sem-sincronizar` treina SEM o DDP: cada processo aprende só com a sua fatia e os pesos divergem
  (as verificações finais falham de propósito — nem iguais entre si, nem iguais ao treino em um só
  processo — e o script sai com código 1).

De uma máquina para muitas:
- várias GPUs em uma máquina: `torchrun --standalone --nproc_per_node=8 treino_distribuido.py`;
- várias máquinas: rode o mesmo comando em cada uma, trocando `--standalone` por um ponto de encontro
  (rendezvous) comum, por exemplo
  `torchrun --nnodes=2 --nproc_per_node=8 --rdzv_id=meu-treino --rdzv_backend=c10d
  --rdzv_endpoint=maquina0:29400 treino_distribuido.py`. O torchrun numera os processos (RANK de 0 a
  WORLD_SIZE − 1) e passa tudo por variáveis de ambiente; este script não muda nada.
- quando o modelo não cabe inteiro em uma GPU, o próximo passo é o FSDP (Fully Sharded Data Parallel,
  `torch.distributed.fsdp`), que reparte também pesos, gradientes e estados do otimizador entre os ranks.
"""
import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from capitulos_anteriores import (GPTDataset, GPTModel, MACHADO_BOOKS, calc_loss_batch, course_tokenizer, load_text,
                                  set_seed)

VARIAVEIS_TORCHRUN = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# Maior diferença aceita, peso a peso, entre o modelo do DDP e o treinado em um só processo com o lote inteiro,
# como fração da taxa de aprendizado (o tamanho do passo do AdamW): 0,2 × 0,003 = 6e-4 com o lr padrão.
FRACAO_TOLERANCIA = 0.2


def ler_argumentos(argv=None) -> argparse.Namespace:
    """Opções de linha de comando; os valores padrão são um treino curto que roda em segundos na CPU."""
    p = argparse.ArgumentParser(description="Treino de um GPT pequeno com DDP (lance com torchrun).")
    p.add_argument("--passos", type=int, default=20, help="passos de otimização (padrão: 20)")
    p.add_argument("--lote", type=int, default=4, help="janelas por processo em cada passo (padrão: 4)")
    p.add_argument("--contexto", type=int, default=64, help="tokens por janela, o context_length (padrão: 64)")
    p.add_argument("--emb", type=int, default=64, help="dimensão dos embeddings, emb_dim (padrão: 64)")
    p.add_argument("--camadas", type=int, default=2, help="blocos transformer, n_layers (padrão: 2)")
    p.add_argument("--cabecas", type=int, default=4, help="cabeças de atenção, n_heads (padrão: 4)")
    p.add_argument("--lr", type=float, default=3e-3, help="taxa de aprendizado do AdamW (padrão: 0.003)")
    p.add_argument("--livro", default="domCasmurro", choices=MACHADO_BOOKS, metavar="NOME",
                   help=f"livro de Machado de Assis (padrão: domCasmurro; opções: {', '.join(MACHADO_BOOKS)})")
    p.add_argument("--semente", type=int, default=123, help="semente dos pesos iniciais e do embaralhamento")
    p.add_argument("--cpu", action="store_true", help="usa a CPU (gloo) mesmo havendo GPU")
    p.add_argument("--sem-sincronizar", action="store_true",
                   help="treina sem DDP, para ver os pesos divergirem (a verificação final falha)")
    p.add_argument("--json", type=Path, default=None, help="arquivo onde o rank 0 grava perdas e resultado")
    args = p.parse_args(argv)
    for nome in ("passos", "lote", "contexto", "emb", "camadas", "cabecas"):
        if getattr(args, nome) < 1:
            p.error(f"--{nome} precisa ser pelo menos 1 (recebi {getattr(args, nome)}).")
    if args.emb % args.cabecas != 0:
        p.error(f"--emb ({args.emb}) precisa ser divisível por --cabecas ({args.cabecas}).")
    return args


def exigir_torchrun() -> None:
    """Sai com uma explicação se o script foi chamado com `python` em vez de `torchrun`."""
    faltando = [v for v in VARIAVEIS_TORCHRUN if v not in os.environ]
    if faltando:
        sys.exit(
            "Este script é treino distribuído: ele precisa ser lançado pelo torchrun, que cria os processos e "
            f"define as variáveis {', '.join(VARIAVEIS_TORCHRUN)} (faltam: {', '.join(faltando)}).\n"
            "Rode, por exemplo:\n"
            "    torchrun --standalone --nproc_per_node=2 08-extras/treino_distribuido.py --passos 20")


def escolher_backend(forcar_cpu: bool, local_world_size: int) -> tuple[str, torch.device]:
    """`nccl` se houver uma GPU CUDA para cada processo desta máquina; senão `gloo` na CPU."""
    if not forcar_cpu and torch.cuda.is_available() and torch.cuda.device_count() >= local_world_size:
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local_rank)
        return "nccl", torch.device("cuda", local_rank)
    return "gloo", torch.device("cpu")


def montar_dados(args, rank: int, world_size: int):
    """Janelas de `--contexto` tokens do livro, repartidas entre os processos pelo DistributedSampler.

    Devolve (tokenizador, dataset, sampler, loader); o tokenizador é o do curso (capítulo 02).
    """
    # Só o rank 0 obtém o livro e o tokenizador (cache, espelho, download ou treino do BPE); os outros esperam
    # na barreira e depois os leem do cache. Assim dois processos nunca escrevem o mesmo arquivo ao mesmo tempo.
    if rank == 0:
        load_text(args.livro)
        course_tokenizer()
    dist.barrier()
    texto = load_text(args.livro)
    tokenizer = course_tokenizer()
    dataset = GPTDataset(texto, tokenizer, max_length=args.contexto, stride=args.contexto)
    # O sampler dá a cada rank índices diferentes (rank, rank + N, rank + 2N, ... depois de embaralhar com a
    # mesma semente em todos): juntos, os processos cobrem o dataset uma vez por época, sem repetir janelas.
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=args.semente,
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=args.lote, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"Cada processo recebe {len(sampler)} janelas, menos que um lote de {args.lote}: "
                         f"diminua --lote ou --contexto.")
    return tokenizer, dataset, sampler, loader


def lotes_sem_fim(loader: DataLoader, sampler: DistributedSampler):
    """Percorre o DataLoader época após época; `set_epoch` muda o embaralhamento (igual em todos os ranks)."""
    epoca = 0
    while True:
        sampler.set_epoch(epoca)
        yield from loader
        epoca += 1


def impressao_digital(model: torch.nn.Module) -> str:
    """SHA-256 dos bytes de todos os parâmetros: dois modelos têm a mesma impressão só se forem idênticos."""
    soma = hashlib.sha256()
    for nome, parametro in model.named_parameters():
        soma.update(nome.encode())
        soma.update(parametro.detach().cpu().contiguous().numpy().tobytes())
    return soma.hexdigest()


def maior_diferenca(modelo_a: torch.nn.Module, modelo_b: torch.nn.Module) -> float:
    """Maior |a − b| entre os parâmetros correspondentes de dois modelos de mesma arquitetura."""
    return max((a.detach() - b.detach()).abs().max().item()
               for a, b in zip(modelo_a.parameters(), modelo_b.parameters(), strict=True))


def treinar_em_um_processo(cfg: dict, args, lotes_por_passo: list, device: torch.device) -> torch.nn.Module:
    """Treina do zero, sem DDP, um modelo com a mesma semente e o mesmo otimizador do treino distribuído.

    `lotes_por_passo[passo][rank]` é o par (entrada, alvo) que aquele rank usou naquele passo; aqui cada passo
    usa a união dos lotes de todos os ranks, um lote N vezes maior.
    """
    set_seed(args.semente)
    modelo = GPTModel(cfg).to(device)
    optimizer = torch.optim.AdamW(modelo.parameters(), lr=args.lr, weight_decay=0.1)
    modelo.train()
    for lotes in lotes_por_passo:
        input_batch = torch.cat([entrada for entrada, _ in lotes])
        target_batch = torch.cat([alvo for _, alvo in lotes])
        optimizer.zero_grad()
        calc_loss_batch(input_batch, target_batch, modelo, device).backward()
        optimizer.step()
    return modelo


def milhar(n: int) -> str:
    """Inteiro com ponto separando os milhares, como se escreve em português (6.536.704)."""
    return f"{n:,}".replace(",", ".")


def main(argv=None) -> int:
    args = ler_argumentos(argv)
    exigir_torchrun()
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    backend, device = escolher_backend(args.cpu, local_world_size)
    # Cada processo entra no grupo; o torchrun já disse a todos quem é o mestre (MASTER_ADDR/MASTER_PORT).
    dist.init_process_group(backend=backend)
    try:
        return treinar(args, rank, world_size, backend, device)
    finally:
        dist.destroy_process_group()


def treinar(args, rank: int, world_size: int, backend: str, device: torch.device) -> int:
    """Treina `--passos` passos, confere os pesos e devolve o código de saída (0 = as duas verificações passaram).

    Verificações: (1) os pesos são idênticos em todos os ranks; (2) são iguais, a menos de
    `FRACAO_TOLERANCIA` × lr, aos de um treino em um só processo com a união dos lotes de cada passo.
    """
    eh_mestre = rank == 0
    tokenizer, dataset, sampler, loader = montar_dados(args, rank, world_size)
    # drop_rate 0: com dropout, cada processo sortearia máscaras diferentes e o treino em um só processo (a
    # verificação do fim) não teria como repetir as mesmas.
    cfg = {"vocab_size": tokenizer.n_vocab, "context_length": args.contexto, "emb_dim": args.emb,
           "n_heads": args.cabecas, "n_layers": args.camadas, "drop_rate": 0.0, "qkv_bias": False}
    # Mesma semente em todos os ranks → mesmos pesos iniciais. (O DDP, ao embrulhar o modelo, ainda copia os
    # pesos do rank 0 para os outros, por garantia.)
    set_seed(args.semente)
    model = GPTModel(cfg).to(device)
    if args.sem_sincronizar:
        modelo_treino = model
    else:
        modelo_treino = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(modelo_treino.parameters(), lr=args.lr, weight_decay=0.1)

    if eh_mestre:
        n_param = sum(p.numel() for p in model.parameters())
        print(f"{world_size} processos | backend {backend} | dispositivo {device.type} | "
              f"{'SEM sincronizar gradientes' if args.sem_sincronizar else 'DDP'}")
        print(f"modelo: {milhar(n_param)} parâmetros (emb {args.emb}, {args.camadas} camadas, "
              f"{args.cabecas} cabeças, contexto {args.contexto})")
        print(f"dados: '{args.livro}' ({tokenizer.name}) em {len(dataset)} janelas; {len(sampler)} por processo; "
              f"lote {args.lote} por processo = {args.lote * world_size} janelas por passo")

    perdas = []
    vistos = []     # os lotes deste rank, na ordem dos passos (para a comparação com um só processo, no fim)
    lotes = lotes_sem_fim(loader, sampler)
    inicio = time.perf_counter()
    modelo_treino.train()
    for passo in range(1, args.passos + 1):
        input_batch, target_batch = next(lotes)
        vistos.append((input_batch.clone(), target_batch.clone()))
        optimizer.zero_grad()
        loss = calc_loss_batch(input_batch, target_batch, modelo_treino, device)
        # Com DDP, o backward() também sincroniza: os gradientes são somados entre os ranks e divididos por N,
        # em pacotes (buckets) que já vão sendo enviados enquanto as camadas anteriores ainda calculam os seus.
        loss.backward()
        optimizer.step()
        # A perda de cada rank é de um lote diferente; a média entre ranks é a perda do "lote grande".
        media = loss.detach().clone()
        dist.all_reduce(media, op=dist.ReduceOp.SUM)
        media = media.item() / world_size
        perdas.append(media)
        if eh_mestre:
            print(f"passo {passo:3d}/{args.passos} | perda no rank 0: {loss.item():.4f} | "
                  f"média entre os {world_size} ranks: {media:.4f}")
    tempo = time.perf_counter() - inicio
    tokens = args.passos * args.lote * args.contexto * world_size

    # Verificação: cada rank calcula a impressão digital dos seus pesos e todos recebem as de todos.
    impressoes = [None] * world_size
    dist.all_gather_object(impressoes, impressao_digital(model))
    iguais = len(set(impressoes)) == 1

    # Segunda verificação: N ranks com lote B equivalem a 1 processo com lote N·B? O rank 0 recebe os lotes de
    # todos (vistos_por_rank[rank][passo]) e repete o treino sozinho, passo a passo, com a união deles.
    vistos_por_rank = [None] * world_size if eh_mestre else None
    dist.gather_object(vistos, vistos_por_rank, dst=0)
    tolerancia = FRACAO_TOLERANCIA * args.lr
    if eh_mestre:
        referencia = treinar_em_um_processo(cfg, args, list(zip(*vistos_por_rank)), device)
        diferenca = maior_diferenca(model, referencia)
        igual_processo_unico = diferenca <= tolerancia
    else:
        diferenca, igual_processo_unico = None, None
    # O resultado vai para todos os ranks, para que todos saiam com o mesmo código.
    resultado = [igual_processo_unico]
    dist.broadcast_object_list(resultado, src=0)
    igual_processo_unico = resultado[0]
    if eh_mestre:
        print(f"tempo: {tempo:.1f} s | {milhar(tokens)} tokens vistos pelos ranks juntos | "
              f"{milhar(round(tokens / tempo))} tokens/s")
        for r, impressao in enumerate(impressoes):
            print(f"rank {r}: SHA-256 dos pesos = {impressao[:16]}…")
        if iguais:
            print(f"Pesos idênticos em todos os {world_size} ranks.")
        else:
            print(f"ERRO: os pesos são diferentes entre os ranks ({len(set(impressoes))} versões distintas).")
        lote_grande = args.lote * world_size
        if igual_processo_unico:
            print(f"Pesos do DDP iguais aos de 1 processo com lote {lote_grande} (as mesmas janelas a cada passo): "
                  f"diferença máxima {diferenca:.1e} ≤ {tolerancia:.0e}.")
        else:
            print(f"ERRO: os pesos do rank 0 diferem do treino em 1 processo com lote {lote_grande}: "
                  f"diferença máxima {diferenca:.1e} > {tolerancia:.0e}.")
        if args.json is not None:
            resumo = {"world_size": world_size, "backend": backend, "ddp": not args.sem_sincronizar,
                      "passos": args.passos, "lote_por_processo": args.lote, "contexto": args.contexto,
                      "perdas": [round(x, 4) for x in perdas], "tempo_s": round(tempo, 2),
                      "tokens": tokens, "pesos_iguais": iguais, "igual_processo_unico": igual_processo_unico,
                      "diferenca_processo_unico": diferenca,
                      "tolerancia_processo_unico": round(tolerancia, 12)}
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(resumo, ensure_ascii=False, indent=2), encoding="utf-8")
    # Todos esperam o rank 0 terminar de escrever antes de desmontar o grupo: um rank que sai enquanto o outro
    # ainda usa a conexão pode derrubar o encerramento do gloo.
    dist.barrier()
    return 0 if iguais and igual_processo_unico else 1


if __name__ == "__main__":
    sys.exit(main())
