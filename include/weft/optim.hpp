// weft/optim.hpp: optimizers, parameter groups, learning-rate schedules, gradient clipping.
#pragma once

